#![allow(dead_code)]

pub mod fake_aws;
pub mod fault_proxy;
pub mod images;
pub mod io_refusals;
pub mod lambda_base;
pub mod lambda_run;
pub mod mutate;
pub mod registry;
pub mod splice_zips;
pub mod tools;
