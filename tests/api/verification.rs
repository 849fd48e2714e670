//! An e-mail address is proved with the code mailed to it (a real SMTP
//! server, aiosmtpd); with `auth.require_verified_email`, an unverified
//! user is refused sign-in, told so, and can get a new code without one.
//! A new address takes effect only once its code comes back.

use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_error, spawn_app, spawn_app_with, PASSWORD};
use crate::mailbox::{code_in, to_of, Mailbox};

#[tokio::test]
async fn a_new_account_proves_its_address_with_the_mailed_code() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = url).await;
    let res = app.register("vera").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["emailVerified"], false);
    let mail = mailbox.wait_for(1).await.remove(0);
    assert!(
        mail.contains("Subject: Confirm your e-mail address"),
        "{mail}"
    );
    let code = code_in(&mail);
    let cookie = app.login_cookie("vera").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": wrong}),
            Some(&cookie),
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": code}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["emailVerified"], true);
    let me: Value = app.me(&cookie).await.json().await.unwrap();
    assert_eq!(me["user"]["emailVerified"], true);
    // Used once; nothing left to resend.
    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": code}),
            Some(&cookie),
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    let res = app
        .post_json("/api/auth/email/resend", &json!({}), Some(&cookie))
        .await;
    expect_error(res, StatusCode::CONFLICT, "email_verified").await;
}

#[tokio::test]
async fn require_verified_email_refuses_sign_in_until_the_address_is_proved() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| {
        c.mail.smtp_url = url;
        c.auth.require_verified_email = true;
    })
    .await;
    assert_eq!(app.register("walt").await.status(), StatusCode::CREATED);
    let first = code_in(&mailbox.wait_for(1).await[0]);
    // A wrong password says nothing more than usual; the right one says why.
    let res = app.login("walt", "not the password at all").await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = app.login("walt", PASSWORD).await;
    assert!(res.headers().get(SET_COOKIE).is_none());
    expect_error(res, StatusCode::FORBIDDEN, "email_unverified").await;
    // A new code without a session, answered as a recovery request is.
    let res = app
        .post_json("/api/auth/email/resend", &json!({"login": "walt"}), None)
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = app
        .post_json("/api/auth/email/resend", &json!({"login": "nobody"}), None)
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mails = mailbox.wait_for(2).await;
    let second = mails
        .iter()
        .map(|m| code_in(m))
        .find(|c| *c != first)
        .expect("a second, different code");
    // The newer code replaced the first.
    let verify = |code: &str| json!({"login": "walt", "code": code});
    let res = app
        .post_json("/api/auth/email/verify", &verify(&first), None)
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;
    let res = app
        .post_json("/api/auth/email/verify", &verify(&second), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.login("walt", PASSWORD).await.status(), StatusCode::OK);
    // An account an operator made counts as verified: root signs in.
    assert_eq!(app.login("root", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_mail_verification_says_so() {
    let app = spawn_app().await;
    let res = app.register("xena").await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["emailVerified"], false);
    let cookie = app.login_cookie("xena").await;
    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": "123456"}),
            Some(&cookie),
        )
        .await;
    expect_error(res, StatusCode::NOT_IMPLEMENTED, "mail_not_configured").await;
    let res = app
        .post_json("/api/auth/email/resend", &json!({}), Some(&cookie))
        .await;
    expect_error(res, StatusCode::NOT_IMPLEMENTED, "mail_not_configured").await;
    let change = json!({"email": "xena@new.example", "password": PASSWORD});
    let res = app
        .post_json("/api/auth/email", &change, Some(&cookie))
        .await;
    expect_error(res, StatusCode::NOT_IMPLEMENTED, "mail_not_configured").await;
}

#[tokio::test]
async fn a_new_address_takes_effect_once_its_code_comes_back_and_the_old_one_is_told() {
    let Some(mailbox) = Mailbox::start() else {
        return;
    };
    let url = mailbox.url();
    let app = spawn_app_with(move |c| c.mail.smtp_url = url).await;
    assert_eq!(app.register("yara").await.status(), StatusCode::CREATED);
    assert_eq!(app.register("zeno").await.status(), StatusCode::CREATED);
    let cookie = app.login_cookie("yara").await;
    let first = mailbox.wait_for(2).await;
    let first = first.iter().find(|m| to_of(m).contains("yara@")).unwrap();
    let body = json!({"code": code_in(first)});
    let res = app
        .post_json("/api/auth/email/verify", &body, Some(&cookie))
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // The password proves it is her; the address must be free and new.
    let change = |email: &str, password: &str| json!({"email": email, "password": password});
    let post = |body: Value| {
        let (app, cookie) = (&app, &cookie);
        async move { app.post_json("/api/auth/email", &body, Some(cookie)).await }
    };
    let wrong = post(change("yara@new.example", "not the password at all")).await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let bare = post(json!({"email": "yara@new.example"})).await;
    expect_error(bare, StatusCode::BAD_REQUEST, "invalid_request").await;
    let taken = post(change("ZENO@example.com", PASSWORD)).await;
    expect_error(taken, StatusCode::CONFLICT, "email_taken").await;
    let same = post(change("yara@example.com", PASSWORD)).await;
    expect_error(same, StatusCode::CONFLICT, "email_verified").await;
    let res = app
        .post_json(
            "/api/auth/email",
            &change("yara@new.example", PASSWORD),
            None,
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(mailbox.all().len(), 2, "a refused change mails nothing");

    let res = post(change("Yara@New.example", PASSWORD)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mails = mailbox.wait_for(3).await;
    let to_new: Vec<_> = mails
        .iter()
        .filter(|m| to_of(m).contains("@New.example"))
        .collect();
    assert_eq!(to_new.len(), 1);
    let code = code_in(to_new[0]);
    // Until the code comes back nothing has changed.
    let me: Value = app.me(&cookie).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "yara@example.com");
    let by_new = json!({"email": "yara@new.example", "password": PASSWORD});
    let res = app.post_json("/api/auth/login", &by_new, None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": code}),
            Some(&cookie),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "Yara@New.example");
    assert_eq!(body["user"]["emailVerified"], true);
    let told = mailbox
        .wait_for_subject("Your sessiond e-mail address was changed", 1)
        .await;
    assert!(to_of(&told[0]).contains("yara@example.com"), "{}", told[0]);
    assert!(told[0].contains("Y***@New.example"), "{}", told[0]);
    let res = app
        .post_json(
            "/api/auth/email/verify",
            &json!({"code": code}),
            Some(&cookie),
        )
        .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_code").await;

    // The index moved: the new address signs in and is taken, the old
    // one neither, and can be registered again.
    assert_eq!(
        app.post_json("/api/auth/login", &by_new, None)
            .await
            .status(),
        StatusCode::OK
    );
    let by_old = json!({"email": "yara@example.com", "password": PASSWORD});
    let res = app.post_json("/api/auth/login", &by_old, None).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let again = json!({"username": "yarb", "email": "yara@new.example", "password": PASSWORD});
    let res = app.post_json("/api/auth/register", &again, None).await;
    expect_error(res, StatusCode::CONFLICT, "email_taken").await;
    let freed = json!({"username": "yarb", "email": "yara@example.com", "password": PASSWORD});
    let res = app.post_json("/api/auth/register", &freed, None).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}
