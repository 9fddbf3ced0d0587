//! `gmsa-crd`: the `GMSACredentialSpec` custom resource (`windows.k8s.io`), its Rust types,
//! the credential-spec model (`CredSpec`) and its validation, and readers that turn Active
//! Directory output (any encoding) into a spec.
