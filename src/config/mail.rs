//! `[mail]`: the SMTP server mail goes out through. Empty `smtp_url`: no
//! mail, and the routes that would send some answer 501.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, ConfigError, Secret};

/// Where and as whom mail is sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `smtp://[user@]host[:port]` (STARTTLS, port 587 by default; plain
    /// only to a loopback relay) or `smtps://[user@]host[:port]` (TLS from
    /// the first byte, 465); empty: no mail.
    pub smtp_url: String,
    /// The `From:` of every mail, `Name <address>` or an address.
    pub from: String,
    /// Longest wait for the SMTP server, per mail.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// `SESSIOND_SMTP_PASSWORD`, or the URL's password: environment only.
    #[serde(skip)]
    pub password: Option<Secret>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: String::new(),
            from: "sessiond <no-reply@example.com>".into(),
            timeout: Duration::from_secs(10),
            password: None,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// None: only to a relay on this machine.
    Plain,
}

/// `smtp_url` taken apart.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// The user to authenticate as, if any.
    pub user: Option<String>,
}

impl MailConfig {
    /// Whether mail is configured at all.
    pub fn enabled(&self) -> bool {
        !self.smtp_url.trim().is_empty()
    }

    /// The SMTP server, parsed; `None` when mail is off. Errors name the key.
    pub fn server(&self) -> Result<Option<SmtpServer>, ConfigError> {
        if !self.enabled() {
            return Ok(None);
        }
        let bad = |message: String| ConfigError::Invalid {
            origin: "config".into(),
            key: "mail.smtp_url".into(),
            message,
        };
        let url = url::Url::parse(self.smtp_url.trim()).map_err(|e| {
            bad(format!(
                "not a URL ({e}); expected smtp://host:587 or smtps://host:465"
            ))
        })?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("names no host".into()))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let (tls, default_port) = match url.scheme() {
            "smtps" => (SmtpTls::Implicit, 465),
            "smtp" if loopback => (SmtpTls::Plain, 25),
            "smtp" => (SmtpTls::StartTls, 587),
            other => {
                return Err(bad(format!(
                    "scheme {other:?} is neither smtp (STARTTLS) nor smtps (TLS)"
                )))
            }
        };
        let user = (!url.username().is_empty()).then(|| decoded(url.username()));
        Ok(Some(SmtpServer {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            user,
        }))
    }

    /// The password from the URL, if it has one: `SESSIOND_SMTP_PASSWORD`
    /// is preferred, since a URL in a file is read by more eyes.
    pub fn url_password(&self) -> Option<String> {
        let url = url::Url::parse(self.smtp_url.trim()).ok()?;
        url.password().map(decoded)
    }
}

/// A URL's user or password, percent-decoded.
fn decoded(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(url: &str) -> MailConfig {
        MailConfig {
            smtp_url: url.into(),
            ..MailConfig::default()
        }
    }

    #[test]
    fn smtp_is_starttls_except_to_a_loopback_relay() {
        let s = with("smtp://mailer@mail.example.com")
            .server()
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.tls, s.port, s.user.as_deref()),
            (SmtpTls::StartTls, 587, Some("mailer"))
        );
        let s = with("smtp://127.0.0.1:2525").server().unwrap().unwrap();
        assert_eq!((s.tls, s.port), (SmtpTls::Plain, 2525));
        let s = with("smtps://mail.example.com").server().unwrap().unwrap();
        assert_eq!((s.tls, s.port), (SmtpTls::Implicit, 465));
        assert!(with("").server().unwrap().is_none());
    }

    #[test]
    fn a_bad_smtp_url_is_named() {
        for url in ["http://mail.example.com", "not a url", "smtp://"] {
            let err = with(url).server().unwrap_err().to_string();
            assert!(err.contains("mail.smtp_url"), "{url}: {err}");
        }
    }
}
