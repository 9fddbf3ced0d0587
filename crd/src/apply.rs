//! Server-side apply of a `GMSACredentialSpec` (field manager `gmsa`).

use kube::api::{Patch, PatchParams};
use kube::Api;

use crate::resource::GMSACredentialSpec;

/// The field manager name used for server-side apply.
pub const FIELD_MANAGER: &str = "gmsa";

/// Server-side applies `spec` (a `PATCH` with `application/apply-patch+yaml`, field manager
/// [`FIELD_MANAGER`]); `force` takes over fields another manager owns. Returns the object as
/// the API server stored it.
pub async fn apply(
    client: kube::Client,
    spec: &GMSACredentialSpec,
    force: bool,
) -> Result<GMSACredentialSpec, kube::Error> {
    let api: Api<GMSACredentialSpec> = Api::all(client);
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if force {
        params = params.force();
    }
    api.patch(spec.name(), &params, &Patch::Apply(spec)).await
}
