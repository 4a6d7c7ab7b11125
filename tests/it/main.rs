//! The integration tests: one test binary (one link, one set of helpers), a module per area.
//! Each drives the real `layerport` binary against real parts started on loopback: a
//! `docker-registry` with htpasswd, a fake AWS endpoint speaking the SDK's wire protocols, and
//! independent consumers (skopeo, umoci, unzip, Python's zipfile) checking what it writes.

mod support;

mod arn_layers;
mod aws_faults;
mod batch_plans;
mod batch_shared;
mod check_image;
mod cli_errors;
mod cli_help;
mod fake_aws_functions_selftest;
mod fake_aws_selftest;
mod fetch_dest_writes;
mod fetch_local;
mod fuzz;
mod golden;
mod hostile_images;
mod hostile_zips;
mod image_bad_input;
mod image_bases;
mod image_docker_archive;
mod image_oci_layout;
mod inspect_cli;
mod inspect_image;
mod lambda_runtime;
mod layer_splice;
mod layer_splice_refusals;
mod layout_sink_existing;
mod migrate_function;
mod migrate_refusals;
mod output_paths;
mod pipeline_overlap;
mod push_bearer_auth;
mod push_ecr_auth;
mod push_registry;
mod readme;
mod registry_tls;
mod roundtrip_prop;
mod shippable_image;
mod zip_image;
mod zip_publish;
mod zip_registry;
mod zip_sources;
