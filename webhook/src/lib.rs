//! `gmsa-webhook`: the admission webhook that inlines and guards GMSA credential specs in pods.
//!
//! Flow of one review (see docs/design.md): bytes in (`server`, `tls`) → wire format
//! (`review`) → lookups resolved through [`lookup::SpecStore`] and [`lookup::Authorizer`] →
//! pure decision (`admission`) → wire format → bytes out.

pub mod admission;
pub mod lookup;
pub mod review;
