//! The one place a rejection becomes the JSON error shape
//! `{"error": {"code", "message"}}`. An internal error is logged here and
//! never shown to the client.

use std::convert::Infallible;

use warp::http::{header, StatusCode};
use warp::reject::Reject;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::auth::AuthError;
use crate::domain::InvalidField;

/// An answer other than success: a status, a stable code and a sentence.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl Reject for ApiError {}

impl ApiError {
    /// Any status and code from the contract's table.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 400: the message names the field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401: no valid session.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "You need to log in first.",
        )
    }

    /// 403: signed in, but the role is too low.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You are not allowed to do that.",
        )
    }

    /// 404 naming what was not found.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 404 for a path no route serves.
    pub fn no_route(path: &str) -> Self {
        Self::not_found(format!(
            "There is no route {path}; the README's HTTP API lists them all."
        ))
    }

    /// 404 for a user id that names nobody (or is not an id at all).
    pub fn no_user(id: &str) -> Self {
        Self::not_found(format!(
            "No user with id {id}; user ids look like 0000000000000001 (see GET /api/admin/users)."
        ))
    }

    /// 405, listing what the path takes (the caller adds `Allow`).
    pub fn method_not_allowed(route: &super::route_table::Route) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} takes {}.", route.path, route.allow_header()),
        )
    }

    /// 403 for a request whose `Origin` is not this server's nor allowed.
    pub fn bad_origin(origin: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "bad_origin",
            format!(
                "Origin {origin} is not allowed; add it to server.allowed_origins to accept it."
            ),
        )
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side; try again.",
        )
    }

    fn storage_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "Storage is unavailable right now; try again shortly.",
        )
    }

    /// The HTTP answer.
    pub fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        res
    }
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> Self {
        ApiError::invalid_request(e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid username or password.",
            ),
            AuthError::Throttled(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                ApiError {
                    retry_after_secs: Some(secs),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_attempts",
                        format!("Too many failed logins; try again in {secs} seconds."),
                    )
                }
            }
            AuthError::RegistrationClosed => ApiError::new(
                StatusCode::FORBIDDEN,
                "registration_closed",
                "Registration is closed.",
            ),
            AuthError::UsernameTaken => ApiError::new(
                StatusCode::CONFLICT,
                "username_taken",
                "That username is taken.",
            ),
            AuthError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "That email is already registered.",
            ),
            AuthError::NotFound => ApiError::not_found("No such user."),
            AuthError::LastAdmin => ApiError::new(
                StatusCode::CONFLICT,
                "last_admin",
                "That would leave no admin: make another user an admin first.",
            ),
            AuthError::Invalid(field) => field.into(),
            AuthError::InvalidToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The ID token is not valid.",
            ),
            AuthError::ProviderUnavailable(why) => {
                tracing::warn!(error = %why, "ID-token provider unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider_unavailable",
                    "The sign-in provider's keys cannot be fetched right now; try again shortly.",
                )
            }
            AuthError::NotLinked => ApiError::new(
                StatusCode::FORBIDDEN,
                "not_linked",
                "This identity is not linked to an account: sign in another way and link it from your account.",
            ),
            AuthError::IdentityTaken => ApiError::new(
                StatusCode::CONFLICT,
                "identity_taken",
                "This identity is linked to another account.",
            ),
            AuthError::LastIdentity => ApiError::new(
                StatusCode::CONFLICT,
                "last_identity",
                "That is your last way to sign in: set a password or link another identity first.",
            ),
            AuthError::MfaFailed => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_failed",
                "The second step failed: check the code, or sign in with your password again (the pending sign-in lasts 5 minutes).",
            ),
            AuthError::WrongCode => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_code",
                "code: that code is not right; enter the 6 digits your authenticator app shows now.",
            ),
            AuthError::ReauthRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "reauth_required",
                "Changing second factors needs a proof within the last 5 minutes: POST /api/auth/reauth with your password (or a code) first.",
            ),
            AuthError::FactorExists => ApiError::new(
                StatusCode::CONFLICT,
                "factor_exists",
                "That second factor is enrolled already: remove it first to enrol a new one.",
            ),
            AuthError::NoEnrolment => ApiError::new(
                StatusCode::CONFLICT,
                "no_enrolment",
                "No enrolment is in progress (or it expired): start it again.",
            ),
            AuthError::KeyRefused => ApiError::new(
                StatusCode::BAD_REQUEST,
                "webauthn_failed",
                "The authenticator's answer was not accepted: start the registration again.",
            ),
            AuthError::NoFactor => ApiError::new(
                StatusCode::CONFLICT,
                "mfa_not_enabled",
                "Recovery codes recover a second factor: enrol an authenticator app or a passkey first.",
            ),
            AuthError::EnrolmentRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_enrolment_required",
                "Your account must have a second factor: enrol one (GET /api/auth/mfa) before anything else.",
            ),
            AuthError::RecoveryFailed => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                "code: that code (or link) is not right, was used or has expired; ask for a new one.",
            ),
            AuthError::EmailUnverified => ApiError::new(
                StatusCode::FORBIDDEN,
                "email_unverified",
                "Your e-mail address is not verified yet: type the code we mailed you, or ask for a new one (POST /api/auth/email/resend).",
            ),
            AuthError::AlreadyVerified => ApiError::new(
                StatusCode::CONFLICT,
                "email_verified",
                "Your e-mail address is verified already.",
            ),
            AuthError::MailNotConfigured => ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "mail_not_configured",
                "This server sends no mail ([mail] smtp_url is not set): ask an administrator for a reset link (sessiond user reset-link NAME).",
            ),
            AuthError::CurrentPasswordRequired => {
                ApiError::invalid_request("currentPassword: required.")
            }
            AuthError::Store(e) => {
                tracing::error!(error = %e, "storage error while serving");
                ApiError::storage_unavailable()
            }
            AuthError::Config(e) | AuthError::Unexpected(e) => {
                tracing::error!(error = %e, "internal error while serving");
                ApiError::internal()
            }
        }
    }
}

/// The provider's errors where a JSON API route meets them (the account
/// page's apps, a sign-in carrying grants over); the OAuth endpoints
/// answer theirs in RFC 6749's shape instead.
impl From<crate::oidc::OidcError> for ApiError {
    fn from(e: crate::oidc::OidcError) -> Self {
        use crate::oidc::OidcError;
        match e {
            OidcError::Auth(a) => a.into(),
            OidcError::Store(s) => AuthError::from(s).into(),
            other => AuthError::Unexpected(other.to_string()).into(),
        }
    }
}

/// Lets handlers use `?` on any layer's error.
macro_rules! into_rejection {
    ($($t:ty),*) => {$(
        impl From<$t> for Rejection {
            fn from(e: $t) -> Rejection {
                warp::reject::custom(ApiError::from(e))
            }
        }
    )*};
}
into_rejection!(InvalidField, AuthError, crate::oidc::OidcError);

/// Maps every rejection to the JSON shape; attached once, at the top.
pub async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{
        InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader,
        PayloadTooLarge, UnsupportedMediaType,
    };
    // Unknown paths and methods were answered from the route table before
    // any route ran; these two remain only as a safety net.
    let api = if err.is_not_found() {
        ApiError::not_found("There is nothing here.")
    } else if let Some(e) = err.find::<ApiError>() {
        e.clone()
    } else if err.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This path does not accept that method.",
        )
    } else if err.find::<PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large (see server.max_body_bytes).",
        )
    } else if err.find::<UnsupportedMediaType>().is_some() {
        unsupported_media_type()
    } else if err.find::<LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "invalid_request",
            "A Content-Length header is required.",
        )
    } else if let Some(e) = err.find::<InvalidQuery>() {
        ApiError::invalid_request(format!("invalid query string: {e}"))
    } else if let Some(e) = err.find::<InvalidHeader>() {
        ApiError::invalid_request(e.to_string())
    } else if let Some(e) = err.find::<MissingHeader>() {
        ApiError::invalid_request(e.to_string())
    } else {
        tracing::error!(rejection = ?err, "unhandled rejection");
        ApiError::internal()
    };
    Ok(api.into_response())
}

/// 413, naming the limit and the setting that raises it.
pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("The request body is over the limit of {limit} bytes (server.max_body_bytes)."),
    )
}

/// 415.
pub fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "The request body must be JSON (Content-Type: application/json).",
    )
}
