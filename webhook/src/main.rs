//! The `gmsa-webhook` binary.

fn main() {}
