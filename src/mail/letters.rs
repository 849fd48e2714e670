//! What the mails say: one plain-text and one HTML template, filled from a
//! `Letter`, so every mail looks alike and nothing typed by a user reaches
//! the HTML unescaped.

/// One mail's content.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The subject line.
    pub subject: String,
    /// The greeting's name.
    pub to_name: String,
    /// Paragraphs before the code or link.
    pub lines: Vec<String>,
    /// A code to type, shown large.
    pub code: Option<String>,
    /// A link to the page (the server's `public_url`).
    pub link: Option<String>,
    /// A closing paragraph.
    pub footer: String,
}

impl Letter {
    /// A recovery code for `username`.
    pub fn recovery_code(username: &str, code: &str, minutes: u64, page: &str) -> Self {
        Letter {
            subject: "Your sessiond recovery code".into(),
            to_name: username.into(),
            lines: vec![
                "Someone (we hope you) asked to set a new password for your account.".into(),
                format!("Type this code on the \"forgot password\" page within {minutes} minutes:"),
            ],
            code: Some(code.into()),
            link: Some(format!("{page}/#/recover")),
            footer: "If you did not ask for this, ignore this mail: your password stays as it is, and the code works for no one else.".into(),
        }
    }

    /// A code that proves `username`'s address.
    pub fn verification_code(username: &str, code: &str, page: &str) -> Self {
        Letter {
            subject: "Confirm your e-mail address for sessiond".into(),
            to_name: username.into(),
            lines: vec![
                "Please confirm that this address is yours: sign in and type this code where your account asks for it, within 24 hours:".into(),
            ],
            code: Some(code.into()),
            link: Some(format!("{page}/#/account")),
            footer: "If you did not make an account, ignore this mail: nothing happens without the code.".into(),
        }
    }

    /// A notice that `username`'s password was changed.
    pub fn password_changed(username: &str, page: &str) -> Self {
        Letter {
            subject: "Your sessiond password was changed".into(),
            to_name: username.into(),
            lines: vec![
                "The password of your account was just changed, and every other session of yours was signed out.".into(),
            ],
            code: None,
            link: Some(format!("{page}/")),
            footer: "If this was not you, ask for a recovery code at once, or tell your administrator.".into(),
        }
    }

    /// A notice to the address `username` left that their account moved
    /// to `to` (shown masked: the old address may no longer be theirs).
    pub fn email_changed(username: &str, to: &str, page: &str) -> Self {
        Letter {
            subject: "Your sessiond e-mail address was changed".into(),
            to_name: username.into(),
            lines: vec![format!(
                "The e-mail address of your account was just changed to {}. Mail for the account now goes there.",
                masked(to)
            )],
            code: None,
            link: Some(format!("{page}/")),
            footer: "If this was not you, tell your administrator at once.".into(),
        }
    }

    /// The plain-text and HTML bodies.
    pub fn render(&self) -> (String, String) {
        let mut text = format!("Hello {},\n\n", self.to_name);
        let mut html = format!(
            "<!doctype html><html><body style=\"font-family:sans-serif;max-width:36em\"><p>Hello {},</p>",
            escape(&self.to_name)
        );
        for line in &self.lines {
            text.push_str(line);
            text.push_str("\n\n");
            html.push_str(&format!("<p>{}</p>", escape(line)));
        }
        if let Some(code) = &self.code {
            text.push_str(&format!("    {code}\n\n"));
            html.push_str(&format!(
                "<p style=\"font-size:1.6em;letter-spacing:.2em\"><strong>{}</strong></p>",
                escape(code)
            ));
        }
        if let Some(link) = &self.link {
            text.push_str(&format!("{link}\n\n"));
            html.push_str(&format!("<p><a href=\"{0}\">{0}</a></p>", escape(link)));
        }
        text.push_str(&self.footer);
        text.push('\n');
        html.push_str(&format!(
            "<p style=\"color:#555\">{}</p></body></html>",
            escape(&self.footer)
        ));
        (text, html)
    }
}

fn escape(raw: &str) -> String {
    raw.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `alice@example.com` as `a***@example.com`.
fn masked(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reaches_both_bodies_and_a_name_is_escaped_in_html() {
        let (text, html) = Letter::recovery_code("<b>eve</b>", "123456", 15, "http://x").render();
        assert!(text.contains("123456") && html.contains("123456"));
        assert!(text.contains("Hello <b>eve</b>"));
        assert!(html.contains("&lt;b&gt;eve&lt;/b&gt;") && !html.contains("<b>eve"));
        assert!(text.contains("http://x/#/recover"));
    }

    #[test]
    fn the_old_address_is_told_where_the_account_went_but_not_in_full() {
        let (text, _) = Letter::email_changed("bob", "bobby@new.example", "http://x").render();
        assert!(text.contains("b***@new.example"), "{text}");
        assert!(!text.contains("bobby"), "{text}");
    }
}
