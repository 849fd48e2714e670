//! The task that drains the outbox over SMTP, and the transport it uses.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Outbox;
use crate::config::{MailConfig, SmtpTls};
use crate::store::{now_ms, MailRecord};

/// Tries before a mail is given up on (about an hour and a quarter of
/// backing off).
const MAX_ATTEMPTS: u32 = 16;
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often the outbox is looked at when nothing wakes the sender (mail
/// queued by another instance, a retry coming due).
const POLL: Duration = Duration::from_secs(1);

/// The SMTP server mail goes to, as `[mail]` configures it.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl SmtpMailer {
    /// The transport for `[mail]`; `None` when mail is off. Must run inside
    /// the runtime (the connection pool spawns its own task).
    pub fn new(config: &MailConfig) -> Result<Option<Self>, String> {
        let Some(server) = config.server().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let from: Mailbox = config.from.parse().map_err(|e| format!("mail.from: {e}"))?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| format!("mail.smtp_url: {e}"))
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .timeout(Some(config.timeout));
        let builder = match server.tls {
            SmtpTls::StartTls => builder.tls(Tls::Required(tls(&server.host)?)),
            SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls(&server.host)?)),
            SmtpTls::Plain => builder.tls(Tls::None),
        };
        let password = config
            .password
            .as_ref()
            .map(|s| String::from_utf8_lossy(s.expose()).into_owned())
            .or_else(|| config.url_password());
        let builder = match (server.user, password) {
            (Some(user), Some(password)) => builder.credentials(Credentials::new(user, password)),
            (Some(_), None) => {
                return Err(
                    "mail.smtp_url names a user but no password: set SESSIOND_SMTP_PASSWORD".into(),
                )
            }
            _ => builder,
        };
        Ok(Some(Self {
            transport: builder.build(),
            from,
            timeout: config.timeout,
        }))
    }

    /// Sends one mail; `Err(permanent, why)` when it failed.
    async fn send(&self, mail: &MailRecord) -> Result<(), (bool, String)> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| (true, format!("bad recipient address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| (true, e.to_string()))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // A 5xx, or what no retry changes (no STARTTLS offered, no
            // usable authentication): given up on at once.
            Err(e) => Err((e.is_permanent() || e.is_client(), e.to_string())),
        }
    }
}

/// Drains the outbox until `stop` completes: claims a due mail, sends it,
/// removes it once the SMTP server took it, or puts it back with a longer
/// wait each time it failed. A mail claimed when the process dies is tried
/// again once its claim lapses (mail is sent at least once).
pub async fn run_sender(outbox: Outbox, mailer: SmtpMailer, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let store = outbox.inner.store.clone();
    let lease = u64::try_from((mailer.timeout * 2 + Duration::from_secs(5)).as_millis())
        .unwrap_or(u64::MAX);
    loop {
        let claimed = match store.claim_mail(now_ms(), lease).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "reading the mail outbox failed");
                None
            }
        };
        let Some((id, mut mail)) = claimed else {
            tokio::select! {
                _ = &mut stop => return,
                _ = outbox.inner.queued.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            continue;
        };
        let sent = tokio::select! {
            _ = &mut stop => return,
            sent = mailer.send(&mail) => sent,
        };
        let counts = &outbox.inner.counts;
        let outcome = match sent {
            Ok(()) => {
                counts.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(mail = id, "mail sent");
                store.finish_mail(id).await
            }
            Err((permanent, why)) if permanent || mail.attempts + 1 >= MAX_ATTEMPTS => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                // A warning, not an error: what no retry fixes is an
                // address or a refusal, not a fault of this server;
                // sessiond_mail_total{result="failed"} counts them.
                tracing::warn!(mail = id, attempts = mail.attempts + 1, error = %why, "mail given up on");
                store.finish_mail(id).await
            }
            Err((_, why)) => {
                mail.attempts += 1;
                let wait = backoff(mail.attempts);
                mail.next_attempt_ms = now_ms().saturating_add(wait.as_millis() as u64);
                tracing::warn!(mail = id, attempts = mail.attempts, retry_in = ?wait, error = %why, "mail not sent; will retry");
                store.retry_mail(id, &mail).await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(mail = id, error = %e, "recording a mail's outcome failed");
        }
    }
}

/// 1 s after the first failure, doubling, at most `MAX_BACKOFF`.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(15), MAX_BACKOFF);
    }
}
