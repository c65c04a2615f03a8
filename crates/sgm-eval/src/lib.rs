//! sgm-eval (work in progress)
