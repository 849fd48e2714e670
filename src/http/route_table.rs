//! Every path the server answers and the methods each takes, in one table.
//!
//! warp's filters route a request; this table answers what they cannot
//! say by themselves: an unknown path (404 naming it), a known path with
//! the wrong method (405 with `Allow`), and a CORS preflight (`OPTIONS`).
//! A test walks the table against the real server, so it cannot drift
//! from the filters.

use warp::http::Method;

/// One path template (`{name}` matches one segment) and its methods.
#[derive(Debug)]
pub struct Route {
    /// Like `/api/admin/users/{id}`.
    pub path: &'static str,
    /// The methods served; `GET` implies `HEAD`.
    pub methods: &'static [Method],
}

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];
const DELETE: &[Method] = &[Method::DELETE];

/// Every route, in the README's order.
pub const ROUTES: &[Route] = &[
    Route {
        path: "/api/auth/register",
        methods: POST,
    },
    Route {
        path: "/api/auth/login",
        methods: POST,
    },
    Route {
        path: "/api/auth/logout",
        methods: POST,
    },
    Route {
        path: "/api/auth/me",
        methods: GET,
    },
    Route {
        path: "/api/auth/idtoken",
        methods: POST,
    },
    Route {
        path: "/api/auth/identities",
        methods: &[Method::GET, Method::POST],
    },
    Route {
        path: "/api/auth/identities/{id}",
        methods: DELETE,
    },
    Route {
        path: "/api/auth/verify",
        methods: GET,
    },
    Route {
        path: "/api/auth/sessions",
        methods: &[Method::GET, Method::DELETE],
    },
    Route {
        path: "/api/auth/sessions/{id}",
        methods: DELETE,
    },
    Route {
        path: "/api/auth/password",
        methods: POST,
    },
    Route {
        path: "/api/auth/activity",
        methods: GET,
    },
    Route {
        path: "/api/auth/recovery",
        methods: POST,
    },
    Route {
        path: "/api/auth/recovery/verify",
        methods: POST,
    },
    Route {
        path: "/api/auth/email/verify",
        methods: POST,
    },
    Route {
        path: "/api/auth/email/resend",
        methods: POST,
    },
    Route {
        path: "/api/auth/email",
        methods: POST,
    },
    Route {
        path: "/api/auth/reauth",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa",
        methods: GET,
    },
    Route {
        path: "/api/auth/mfa/totp",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/recovery",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/totp/enrol",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/totp/confirm",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/webauthn/start",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/webauthn/finish",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/webauthn/register/start",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/webauthn/register/finish",
        methods: POST,
    },
    Route {
        path: "/api/auth/passkey/start",
        methods: POST,
    },
    Route {
        path: "/api/auth/passkey/finish",
        methods: POST,
    },
    Route {
        path: "/api/auth/mfa/{id}",
        methods: DELETE,
    },
    Route {
        path: "/api/auth/apps",
        methods: GET,
    },
    Route {
        path: "/api/auth/apps/{client}",
        methods: DELETE,
    },
    Route {
        path: "/api/admin/users",
        methods: GET,
    },
    Route {
        path: "/api/admin/users/{id}",
        methods: &[Method::PATCH, Method::DELETE],
    },
    Route {
        path: "/api/admin/users/{id}/sessions",
        methods: DELETE,
    },
    Route {
        path: "/api/admin/users/{id}/reset-link",
        methods: POST,
    },
    Route {
        path: "/api/admin/users/{id}/mfa",
        methods: &[Method::GET, Method::DELETE],
    },
    Route {
        path: "/api/admin/users/{id}/unlock",
        methods: POST,
    },
    Route {
        path: "/api/admin/stats",
        methods: GET,
    },
    Route {
        path: "/api/admin/activity",
        methods: GET,
    },
    Route {
        path: "/api/admin/backup",
        methods: POST,
    },
    Route {
        path: "/.well-known/openid-configuration",
        methods: GET,
    },
    Route {
        path: "/api/oidc/jwks",
        methods: GET,
    },
    Route {
        path: "/api/oidc/authorize",
        methods: GET,
    },
    Route {
        path: "/api/oidc/consent",
        methods: &[Method::GET, Method::POST],
    },
    Route {
        path: "/api/oidc/token",
        methods: POST,
    },
    Route {
        path: "/api/oidc/userinfo",
        methods: &[Method::GET, Method::POST],
    },
    Route {
        path: "/api/oidc/revoke",
        methods: POST,
    },
    Route {
        path: "/api/oidc/introspect",
        methods: POST,
    },
    Route {
        path: "/api/oidc/logout",
        methods: &[Method::GET, Method::POST],
    },
    Route {
        path: "/api/oidc/logout/confirm",
        methods: POST,
    },
    Route {
        path: "/api/chat/rooms/{room}/messages",
        methods: GET,
    },
    Route {
        path: "/ws/chat",
        methods: GET,
    },
    Route {
        path: "/api/openapi.json",
        methods: GET,
    },
    Route {
        path: "/",
        methods: GET,
    },
    Route {
        path: "/app.js",
        methods: GET,
    },
    Route {
        path: "/app.css",
        methods: GET,
    },
    Route {
        path: "/favicon.svg",
        methods: GET,
    },
    Route {
        path: "/sessiond.js",
        methods: GET,
    },
    Route {
        path: "/healthz",
        methods: GET,
    },
    Route {
        path: "/metrics",
        methods: GET,
    },
];

/// The route whose template matches `path` (one trailing slash ignored,
/// as warp's own path filters do).
pub fn find(path: &str) -> Option<&'static Route> {
    let path = match path.strip_suffix('/') {
        Some("") | None => path,
        Some(trimmed) => trimmed,
    };
    // Every request passes here: fixed paths by plain comparison first,
    // then the few templates segment by segment.
    ROUTES.iter().find(|r| r.path == path).or_else(|| {
        ROUTES
            .iter()
            .find(|r| r.path.contains('{') && matches(r.path, path))
    })
}

fn matches(template: &str, path: &str) -> bool {
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

impl Route {
    /// Whether `method` is served here (`HEAD` wherever `GET` is).
    pub fn allows(&self, method: &Method) -> bool {
        self.methods.contains(method)
            || (*method == Method::HEAD && self.methods.contains(&Method::GET))
    }

    /// The `Allow` header's value: the methods, `HEAD` after `GET`, then
    /// `OPTIONS`, which every route answers.
    pub fn allow_header(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for m in self.methods {
            names.push(m.as_str());
            if *m == Method::GET {
                names.push("HEAD");
            }
        }
        names.push("OPTIONS");
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_one_segment_per_parameter() {
        assert_eq!(
            find("/api/admin/users/7").unwrap().path,
            "/api/admin/users/{id}"
        );
        assert_eq!(
            find("/api/admin/users/7/sessions").unwrap().path,
            "/api/admin/users/{id}/sessions"
        );
        assert_eq!(find("/api/auth/me/").unwrap().path, "/api/auth/me");
        assert!(find("/api/admin/users/").is_some_and(|r| r.path == "/api/admin/users"));
        assert!(find("/api/admin/users//sessions").is_none());
        assert!(find("/api/auth/mee").is_none());
        assert_eq!(find("/").unwrap().path, "/");
    }

    #[test]
    fn allow_lists_head_after_get_and_options_last() {
        let sessions = find("/api/auth/sessions").unwrap();
        assert_eq!(sessions.allow_header(), "GET, HEAD, DELETE, OPTIONS");
        assert!(sessions.allows(&Method::HEAD));
        assert!(!sessions.allows(&Method::POST));
    }
}
