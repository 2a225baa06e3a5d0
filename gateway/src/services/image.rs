//! Glance (image v2) route table and classifier.
//!
//! Paths are relative to Glance's base URL: `/v2/...`. `GET /`, `/versions` and `/v2` are
//! version documents.
//!
//! Conventions:
//! - `PATCH /v2/images/{id}` (JSON patch) is `Image`/`Update`.
//! - `PUT /v2/images/{id}/file` is `ImageData`/`Create`: Glance accepts data once per image
//!   (a second upload is a 409), so the upload creates the image's data rather than updating
//!   it. `GET .../file` (download) is `ImageData`/`Read`. Both stream; neither is buffered.
//! - Interoperable import: `PUT .../stage` is `ImageData`/`Action` named `stage`,
//!   `POST .../import` is `Image`/`Action` named `import`.
//! - `POST .../actions/deactivate|reactivate` is `Image`/`Action` with that name.
//! - Tags: `PUT /v2/images/{id}/tags/{tag}` is `ImageTag`/`Create`, `DELETE` is `Delete`,
//!   ids `[image_id, tag]`.

use serde_json::{Map, Value};

use super::{named, route, Request, Route, Verb as V};
use crate::operation::{Action as A, Operation, ResourceType as R};

/// One operation of an image update (`PATCH /v2/images/{id}`) as (kind, path), in either of
/// the forms Glance takes: `{"op": "replace", "path": "/name", ...}` (JSON Schema draft 10,
/// `application/openstack-images-v2.1-json-patch`) and `{"replace": "/name", ...}` (draft
/// 4, `...-v2.0-json-patch`, which tempest and older clients send). `None` when it is
/// neither (Glance refuses it).
pub fn patch_op(op: &Map<String, Value>) -> Option<(&'static str, &str)> {
    const KINDS: [&str; 3] = ["add", "remove", "replace"];
    if let Some(kind) = op.get("op") {
        let kind = KINDS.into_iter().find(|k| Some(*k) == kind.as_str())?;
        return Some((kind, op.get("path")?.as_str()?));
    }
    let mut named = KINDS.into_iter().filter(|k| op.contains_key(*k));
    match (named.next(), named.next()) {
        (Some(kind), None) => Some((kind, op.get(kind)?.as_str()?)),
        _ => None,
    }
}

/// Glance, relative to `/v2`.
pub static ROUTES: &[Route] = &[
    route(V::Get, "images", R::Image, A::Read),
    route(V::Post, "images", R::Image, A::Create),
    route(V::Get, "images/*", R::Image, A::Read),
    route(V::Patch, "images/*", R::Image, A::Update),
    route(V::Delete, "images/*", R::Image, A::Delete),
    route(V::Put, "images/*/file", R::ImageData, A::Create),
    route(V::Get, "images/*/file", R::ImageData, A::Read),
    named(V::Put, "images/*/stage", R::ImageData, "stage"),
    named(V::Post, "images/*/import", R::Image, "import"),
    named(
        V::Post,
        "images/*/actions/deactivate",
        R::Image,
        "deactivate",
    ),
    named(
        V::Post,
        "images/*/actions/reactivate",
        R::Image,
        "reactivate",
    ),
    route(V::Put, "images/*/tags/*", R::ImageTag, A::Create),
    route(V::Delete, "images/*/tags/*", R::ImageTag, A::Delete),
];

pub(crate) fn classify(req: &Request<'_>) -> Option<Operation> {
    match req.segments {
        [] | ["versions"] | ["v2"] => req.version(None),
        ["v2", rest @ ..] => req.lookup(ROUTES, rest, None),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::operation::Service;
    use crate::services::test_support::{check, Case};

    #[rustfmt::skip]
    pub(crate) const CASES: &[Case] = &[
        ("GET", "/", R::Version, A::Read, &[], None, None),
        ("GET", "/versions", R::Version, A::Read, &[], None, None),
        ("GET", "/v2", R::Version, A::Read, &[], None, None),
        ("GET", "/v2/images", R::Image, A::Read, &[], None, None),
        ("POST", "/v2/images", R::Image, A::Create, &[], None, None),
        ("GET", "/v2/images/i1", R::Image, A::Read, &["i1"], None, None),
        ("PATCH", "/v2/images/i1", R::Image, A::Update, &["i1"], None, None),
        ("DELETE", "/v2/images/i1", R::Image, A::Delete, &["i1"], None, None),
        ("PUT", "/v2/images/i1/file", R::ImageData, A::Create, &["i1"], None, None),
        ("GET", "/v2/images/i1/file", R::ImageData, A::Read, &["i1"], None, None),
        ("PUT", "/v2/images/i1/stage", R::ImageData, A::Action, &["i1"], None, Some("stage")),
        ("POST", "/v2/images/i1/import", R::Image, A::Action, &["i1"], None, Some("import")),
        ("POST", "/v2/images/i1/actions/deactivate", R::Image, A::Action, &["i1"], None, Some("deactivate")),
        ("POST", "/v2/images/i1/actions/reactivate", R::Image, A::Action, &["i1"], None, Some("reactivate")),
        ("PUT", "/v2/images/i1/tags/dr-tier", R::ImageTag, A::Create, &["i1", "dr-tier"], None, None),
        ("DELETE", "/v2/images/i1/tags/a%20b", R::ImageTag, A::Delete, &["i1", "a%20b"], None, None),
        // unknown
        ("POST", "/v2/images/i1/members", R::Other, A::Create, &[], None, None),
        ("PUT", "/v2/images/i1", R::Other, A::Update, &[], None, None),
        ("GET", "/v2/schemas/image", R::Other, A::Read, &[], None, None),
        ("POST", "/v2", R::Other, A::Create, &[], None, None),
        ("DELETE", "/v1/images/i1", R::Other, A::Delete, &[], None, None),
    ];

    #[test]
    fn routes() {
        check(Service::Image, CASES);
    }
}
