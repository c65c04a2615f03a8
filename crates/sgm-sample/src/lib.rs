//! sgm-sample (work in progress)
