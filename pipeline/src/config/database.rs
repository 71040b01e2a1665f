//! The database URL with its password: the password is read from the file or variable the
//! configuration names and put into the URL only in memory, as a [`Secret`].

use crate::secret::{Secret, SecretError};

use super::DatabaseSettings;

impl DatabaseSettings {
    /// The URL to connect with: `url` itself, or a PostgreSQL URL with the configured password in it.
    pub fn connection_url(&self) -> Result<Secret, SecretError> {
        let Some(source) = &self.password else { return Ok(Secret::new(self.url.clone())) };
        let password = source.load()?;
        Ok(Secret::new(with_password(&self.url, password.expose())))
    }
}

/// `postgres://user@host/db` with `password` (percent-encoded) after the user.
fn with_password(url: &str, password: &str) -> String {
    let encoded: String = password
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else { return url.to_string() };
    let authority_end = url[scheme_end..].find('/').map_or(url.len(), |index| scheme_end + index);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => {
            let user_end = scheme_end + at;
            let user = url[scheme_end..user_end].split(':').next().unwrap_or_default();
            format!("{}{user}:{encoded}{}", &url[..scheme_end], &url[user_end..])
        }
        None => format!("{}:{encoded}@{}", &url[..scheme_end], &url[scheme_end..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_after_the_user_encoded() {
        let cases = [
            (
                "postgres://arbor@db.example.com/arbor",
                "s3cret",
                "postgres://arbor:s3cret@db.example.com/arbor",
            ),
            ("postgres://arbor@db:5432/arbor", "p@ss:w/rd", "postgres://arbor:p%40ss%3Aw%2Frd@db:5432/arbor"),
            ("postgres://db.example.com/arbor", "x", "postgres://:x@db.example.com/arbor"),
        ];
        for (url, password, expected) in cases {
            assert_eq!(with_password(url, password), expected, "{url}");
        }
    }
}
