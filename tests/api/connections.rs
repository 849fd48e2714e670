//! Many idle connections cannot starve the users already connected: past
//! `server.max_connections`, new connections wait to be accepted.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::net::TcpStream;

use crate::helpers::*;

async fn healthz(client: &reqwest::Client, app: &TestApp) -> Result<StatusCode, reqwest::Error> {
    Ok(client.get(app.url("/healthz")).send().await?.status())
}

#[tokio::test]
async fn past_the_limit_new_connections_wait_while_existing_ones_are_served() {
    let app = spawn_app_with(|c| c.server.max_connections = 3).await;
    // A user with a kept-alive connection takes the first place.
    let user = reqwest::Client::new();
    assert_eq!(healthz(&user, &app).await.unwrap(), StatusCode::OK);
    // Two clients that connect and say nothing take the others.
    let idle_one = TcpStream::connect(app.addr).await.unwrap();
    let _idle_two = TcpStream::connect(app.addr).await.unwrap();

    // A newcomer is not served while the places are taken...
    let newcomer = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let waited = healthz(&newcomer, &app).await;
    assert!(
        waited.as_ref().is_err_and(|e| e.is_timeout()),
        "a fourth connection was served: {waited:?}"
    );
    // ...but the user already in still is.
    for _ in 0..3 {
        assert_eq!(healthz(&user, &app).await.unwrap(), StatusCode::OK);
    }

    // One idle client leaves: the newcomer gets in.
    drop(idle_one);
    let newcomer = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(healthz(&newcomer, &app).await.unwrap(), StatusCode::OK);
}
