//! sgm-nets (work in progress)
