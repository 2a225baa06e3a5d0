//! Cinder (block storage v3) route table and classifier.
//!
//! Paths are relative to Cinder's base URL: `/v3/{project_id}/...`, or `/v3/...` without
//! the project id (microversion 3.67 and later); the project id goes to
//! `Operation::project`. `GET /`, `/v3` (also `/v2`) and `/v3/{project_id}` are version
//! documents.
//!
//! Conventions:
//! - `POST /volumes/{id}/action` is `VolumeAction`/`Action`, `action_name` `None`: the body's
//!   single key names it (`os-extend`, `os-set_bootable`, ...), see
//!   [`super::action_name_from_body`]. `POST /types/{id}/action` (`addProjectAccess`,
//!   `removeProjectAccess`) is `VolumeType`/`Action` and `POST /snapshots/{id}/action` is
//!   `Snapshot`/`Action`, alike.
//! - Volume metadata: `POST .../metadata` (merge) is `Create`, `PUT .../metadata` (replace
//!   all) and `PUT .../metadata/{key}` are `Update`; ids `[volume_id]` or `[volume_id, key]`.
//! - Snapshot metadata has no resource type of its own: every write to it is `Snapshot`/
//!   `Update` (never `Delete`, which would mean the snapshot), ids `[snapshot_id(, key)]`.

use super::{route, Request, Route, Verb as V};
use crate::operation::{Action as A, Operation, ResourceType as R};

const VERSIONS: [&str; 3] = ["v3", "v2", "v1"];

/// Cinder, relative to `/v3` (or `/v3/{project_id}`).
pub static ROUTES: &[Route] = &[
    // volumes
    route(V::Get, "volumes", R::Volume, A::Read),
    route(V::Post, "volumes", R::Volume, A::Create),
    route(V::Get, "volumes/detail", R::Volume, A::Read),
    route(V::Get, "volumes/summary", R::Volume, A::Read),
    route(V::Get, "volumes/*", R::Volume, A::Read),
    route(V::Put, "volumes/*", R::Volume, A::Update),
    route(V::Delete, "volumes/*", R::Volume, A::Delete),
    route(V::Post, "volumes/*/action", R::VolumeAction, A::Action),
    route(V::Get, "volumes/*/metadata", R::VolumeMetadata, A::Read),
    route(V::Post, "volumes/*/metadata", R::VolumeMetadata, A::Create),
    route(V::Put, "volumes/*/metadata", R::VolumeMetadata, A::Update),
    route(V::Get, "volumes/*/metadata/*", R::VolumeMetadata, A::Read),
    route(V::Put, "volumes/*/metadata/*", R::VolumeMetadata, A::Update),
    route(
        V::Delete,
        "volumes/*/metadata/*",
        R::VolumeMetadata,
        A::Delete,
    ),
    // volume types and extra specs
    route(V::Get, "types", R::VolumeType, A::Read),
    route(V::Post, "types", R::VolumeType, A::Create),
    route(V::Get, "types/*", R::VolumeType, A::Read),
    route(V::Put, "types/*", R::VolumeType, A::Update),
    route(V::Delete, "types/*", R::VolumeType, A::Delete),
    route(V::Post, "types/*/action", R::VolumeType, A::Action),
    route(
        V::Get,
        "types/*/os-volume-type-access",
        R::VolumeType,
        A::Read,
    ),
    route(
        V::Get,
        "types/*/extra_specs",
        R::VolumeTypeExtraSpec,
        A::Read,
    ),
    route(
        V::Post,
        "types/*/extra_specs",
        R::VolumeTypeExtraSpec,
        A::Create,
    ),
    route(
        V::Get,
        "types/*/extra_specs/*",
        R::VolumeTypeExtraSpec,
        A::Read,
    ),
    route(
        V::Put,
        "types/*/extra_specs/*",
        R::VolumeTypeExtraSpec,
        A::Update,
    ),
    route(
        V::Delete,
        "types/*/extra_specs/*",
        R::VolumeTypeExtraSpec,
        A::Delete,
    ),
    // snapshots
    route(V::Get, "snapshots", R::Snapshot, A::Read),
    route(V::Post, "snapshots", R::Snapshot, A::Create),
    route(V::Get, "snapshots/detail", R::Snapshot, A::Read),
    route(V::Get, "snapshots/*", R::Snapshot, A::Read),
    route(V::Put, "snapshots/*", R::Snapshot, A::Update),
    route(V::Delete, "snapshots/*", R::Snapshot, A::Delete),
    route(V::Post, "snapshots/*/action", R::Snapshot, A::Action),
    route(V::Get, "snapshots/*/metadata", R::Snapshot, A::Read),
    route(V::Post, "snapshots/*/metadata", R::Snapshot, A::Update),
    route(V::Put, "snapshots/*/metadata", R::Snapshot, A::Update),
    route(V::Get, "snapshots/*/metadata/*", R::Snapshot, A::Read),
    route(V::Put, "snapshots/*/metadata/*", R::Snapshot, A::Update),
    route(V::Delete, "snapshots/*/metadata/*", R::Snapshot, A::Update),
];

pub(crate) fn classify(req: &Request<'_>) -> Option<Operation> {
    match req.segments {
        [] => req.version(None),
        [version] if VERSIONS.contains(version) => req.version(None),
        [version, rest @ ..] if VERSIONS.contains(version) => req.lookup_with_project(ROUTES, rest),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::operation::Service;
    use crate::services::test_support::{check, Case};

    const P: Option<&str> = Some("9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a");

    #[rustfmt::skip]
    pub(crate) const CASES: &[Case] = &[
        ("GET", "/", R::Version, A::Read, &[], None, None),
        ("GET", "/v3", R::Version, A::Read, &[], None, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a", R::Version, A::Read, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes", R::Volume, A::Read, &[], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes", R::Volume, A::Create, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/detail", R::Volume, A::Read, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/summary", R::Volume, A::Read, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1", R::Volume, A::Read, &["v1"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1", R::Volume, A::Update, &["v1"], P, None),
        ("DELETE", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1", R::Volume, A::Delete, &["v1"], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1/action", R::VolumeAction, A::Action, &["v1"], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1/metadata", R::VolumeMetadata, A::Read, &["v1"], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1/metadata", R::VolumeMetadata, A::Create, &["v1"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1/metadata", R::VolumeMetadata, A::Update, &["v1"], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1/metadata/dr_tier", R::VolumeMetadata, A::Read, &["v1", "dr_tier"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1/metadata/dr_tier", R::VolumeMetadata, A::Update, &["v1", "dr_tier"], P, None),
        ("DELETE", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/volumes/v1/metadata/k", R::VolumeMetadata, A::Delete, &["v1", "k"], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types", R::VolumeType, A::Read, &[], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types", R::VolumeType, A::Create, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1", R::VolumeType, A::Read, &["t1"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1", R::VolumeType, A::Update, &["t1"], P, None),
        ("DELETE", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1", R::VolumeType, A::Delete, &["t1"], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1/action", R::VolumeType, A::Action, &["t1"], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1/os-volume-type-access", R::VolumeType, A::Read, &["t1"], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1/extra_specs", R::VolumeTypeExtraSpec, A::Read, &["t1"], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1/extra_specs", R::VolumeTypeExtraSpec, A::Create, &["t1"], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1/extra_specs/volume_backend_name", R::VolumeTypeExtraSpec, A::Read, &["t1", "volume_backend_name"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1/extra_specs/volume_backend_name", R::VolumeTypeExtraSpec, A::Update, &["t1", "volume_backend_name"], P, None),
        ("DELETE", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/types/t1/extra_specs/k", R::VolumeTypeExtraSpec, A::Delete, &["t1", "k"], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots", R::Snapshot, A::Create, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots", R::Snapshot, A::Read, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/detail", R::Snapshot, A::Read, &[], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1", R::Snapshot, A::Read, &["s1"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1", R::Snapshot, A::Update, &["s1"], P, None),
        ("DELETE", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1", R::Snapshot, A::Delete, &["s1"], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1/action", R::Snapshot, A::Action, &["s1"], P, None),
        ("GET", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1/metadata", R::Snapshot, A::Read, &["s1"], P, None),
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1/metadata", R::Snapshot, A::Update, &["s1"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1/metadata", R::Snapshot, A::Update, &["s1"], P, None),
        ("PUT", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1/metadata/k", R::Snapshot, A::Update, &["s1", "k"], P, None),
        ("DELETE", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/snapshots/s1/metadata/k", R::Snapshot, A::Update, &["s1", "k"], P, None),
        // without the project id (3.67+)
        ("POST", "/v3/volumes", R::Volume, A::Create, &[], None, None),
        ("POST", "/v3/volumes/v1/action", R::VolumeAction, A::Action, &["v1"], None, None),
        ("PUT", "/v3/types/t1/extra_specs/k", R::VolumeTypeExtraSpec, A::Update, &["t1", "k"], None, None),
        ("GET", "/v3/snapshots/s1/metadata/k", R::Snapshot, A::Read, &["s1", "k"], None, None),
        // a project id that is not hex still works when the rest is a known route
        ("POST", "/v3/demo-project/volumes", R::Volume, A::Create, &[], Some("demo-project"), None),
        // unknown
        ("POST", "/v3/9f3c2b1a9f3c2b1a9f3c2b1a9f3c2b1a/backups", R::Other, A::Create, &[], P, None),
        ("POST", "/v3/backups", R::Other, A::Create, &[], None, None),
        ("GET", "/v3/limits", R::Other, A::Read, &[], None, None),
        ("PATCH", "/v3/volumes/v1", R::Other, A::Update, &[], None, None),
        ("DELETE", "/v4/volumes/v1", R::Other, A::Delete, &[], None, None),
    ];

    #[test]
    fn routes() {
        check(Service::BlockStorage, CASES);
    }
}
