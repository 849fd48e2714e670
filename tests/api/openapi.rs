//! `GET /api/openapi.json`: an OpenAPI 3.1 document kept true by walking
//! it against the route table the server answers from, and by checking
//! its own examples against its own schemas.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sessiond::http::route_table::ROUTES;

use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    let res = app.get("/api/openapi.json", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

#[tokio::test]
async fn every_route_served_is_documented_and_nothing_else() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (path.clone(), m.to_ascii_uppercase()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|r| {
            r.methods
                .iter()
                .map(move |m| (r.path.to_owned(), m.as_str().to_owned()))
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn the_cookie_scheme_names_the_configured_cookie() {
    let app = spawn_app_with(|c| c.session.cookie_name = "__Host-sid".into()).await;
    let doc = document(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["sessionCookie"];
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], "__Host-sid");
}

/// `schema` with the document's components beside it, so `$ref`s resolve.
fn rooted(schema: &Value, doc: &Value) -> Value {
    let mut root = schema.clone();
    if !root.is_object() {
        root = json!({ "allOf": [root] });
    }
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = doc["components"].clone();
    root
}

#[tokio::test]
async fn every_example_validates_against_its_schema() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut checked = 0;
    let mut check = |place: String, media: &Value| {
        let (Some(schema), Some(example)) = (media.get("schema"), media.get("example")) else {
            return;
        };
        let validator = jsonschema::validator_for(&rooted(schema, &doc))
            .unwrap_or_else(|e| panic!("{place}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(example)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{place}: the example fails its schema: {errors:?}"
        );
        checked += 1;
    };
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if let Some(media) = op["requestBody"]["content"].get("application/json") {
                check(format!("{method} {path} request"), media);
            }
            for (status, res) in op["responses"].as_object().unwrap() {
                if let Some(media) = res["content"].get("application/json") {
                    check(format!("{method} {path} {status}"), media);
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} examples were checked");
}

#[tokio::test]
async fn a_live_answer_matches_its_documented_schema() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let alice = app.register_and_login("alice").await;
    let me: Value = app.me(&alice).await.json().await.unwrap();
    let schema = &doc["paths"]["/api/auth/me"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    let validator = jsonschema::validator_for(&rooted(schema, &doc)).unwrap();
    let errors: Vec<String> = validator.iter_errors(&me).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let res = app.get("/api/auth/whoami", None).await;
    let body: Value = res.json().await.unwrap();
    let error_schema = rooted(&json!({"$ref": "#/components/schemas/Error"}), &doc);
    assert!(jsonschema::validator_for(&error_schema)
        .unwrap()
        .is_valid(&body));
}
