#![allow(dead_code)]

pub mod fake_aws;
pub mod tools;
