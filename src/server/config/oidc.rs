//! Sign-in through an OpenID Connect provider: where it is, who Rill is to it, who may get an
//! account, who is an admin, and whether passwords still sign in.

use super::settings::{self, Env};
use super::{AuthMode, ConfigError};

/// The path the provider sends people back to (`server/oidc.rs` serves it).
pub const CALLBACK_PATH: &str = "/auth/oidc/callback";

#[derive(Clone, PartialEq)]
pub struct OidcSettings {
    /// The issuer; its discovery document is at `/.well-known/openid-configuration` under it
    /// ([`settings::OIDC_ISSUER`]).
    pub issuer: String,
    pub client_id: String,
    /// Never printed ([`settings::OIDC_CLIENT_SECRET`]).
    pub client_secret: String,
    /// Asked for besides `openid` ([`settings::OIDC_SCOPES`]).
    pub scopes: Vec<String>,
    /// Where the provider sends people back: [`settings::OIDC_REDIRECT_URL`], or the public
    /// URL's [`CALLBACK_PATH`].
    pub redirect_url: String,
    /// On the sign-in page's button ([`settings::OIDC_NAME`]).
    pub name: String,
    /// People with a verified address in one of these domains (lower case; `*`: any) get an
    /// account at their first sign-in ([`settings::OIDC_ALLOWED_DOMAINS`]).
    pub allowed_domains: Vec<String>,
    /// So do members of these groups ([`settings::OIDC_ALLOWED_GROUPS`]).
    pub allowed_groups: Vec<String>,
    /// The claim listing a person's groups ([`settings::OIDC_GROUPS_CLAIM`]).
    pub groups_claim: String,
    /// Its members are admins, and the provider's other people are not
    /// ([`settings::OIDC_ADMIN_GROUP`]; unset: the provider decides nobody's role).
    pub admin_group: Option<String>,
    /// Passwords sign in too ([`settings::PASSWORD_SIGN_IN`]).
    pub password_sign_in: bool,
}

/// The secret stays out of logs and error messages.
impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An http(s) URL; plain http only to a loopback address (a test's provider, or one on the same
/// machine), since codes and tokens travel in it.
fn web_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("a URL ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("an https:// URL (http:// only to a loopback address)".into()),
    }
}

impl OidcSettings {
    /// `None` when no issuer is set (then passwords must stay on).
    pub(super) fn read(
        env: &Env,
        mode: AuthMode,
        public_url: Option<&str>,
    ) -> Result<Option<Self>, ConfigError> {
        let password_sign_in = env.word(&settings::PASSWORD_SIGN_IN)?;
        let issuer_setting = &settings::OIDC_ISSUER;
        let Some(issuer) = env.optional(issuer_setting) else {
            if !password_sign_in {
                return Err(ConfigError::Invalid(format!(
                    "{}=off needs {}: otherwise nobody could sign in",
                    settings::PASSWORD_SIGN_IN.name,
                    issuer_setting.name
                )));
            }
            return Ok(None);
        };
        if mode != AuthMode::Accounts {
            return Err(ConfigError::Invalid(format!(
                "{} needs {}=accounts",
                issuer_setting.name,
                settings::AUTH.name
            )));
        }
        // Kept as written: discovery compares it with the provider's own, slash and all.
        web_url(&issuer).map_err(|what| issuer_setting.refuse_as(what, &issuer))?;
        let issuer = issuer.trim().to_owned();
        let needed = |setting: &settings::Setting<settings::Optional>| {
            env.optional(setting)
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "{} needs {} too",
                        issuer_setting.name, setting.name
                    ))
                })
        };
        let client_id = needed(&settings::OIDC_CLIENT_ID)?;
        let client_secret = needed(&settings::OIDC_CLIENT_SECRET)?;
        let redirect_setting = &settings::OIDC_REDIRECT_URL;
        let redirect_url = match (env.optional(redirect_setting), public_url) {
            (Some(text), _) => web_url(&text)
                .map_err(|what| redirect_setting.refuse_as(what, &text))?
                .to_string(),
            (None, Some(public)) => {
                format!("{}{CALLBACK_PATH}", public.trim().trim_end_matches('/'))
            }
            (None, None) => {
                return Err(ConfigError::Invalid(format!(
                    "{} needs {} or {}: the provider must know where to send people back",
                    issuer_setting.name,
                    settings::PUBLIC_URL.name,
                    redirect_setting.name
                )))
            }
        };
        let mut scopes: Vec<String> = env
            .list(&settings::OIDC_SCOPES)
            .into_iter()
            .filter(|s| s != "openid")
            .collect();
        scopes.dedup();
        let name = env.text(&settings::OIDC_NAME).trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(settings::OIDC_NAME.refuse_as("1 to 64 characters", &name));
        }
        let groups_claim = env.text(&settings::OIDC_GROUPS_CLAIM).trim().to_owned();
        Ok(Some(Self {
            issuer,
            client_id,
            client_secret,
            scopes,
            redirect_url,
            name,
            allowed_domains: env
                .list(&settings::OIDC_ALLOWED_DOMAINS)
                .into_iter()
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            allowed_groups: env.list(&settings::OIDC_ALLOWED_GROUPS),
            groups_claim,
            admin_group: env
                .optional(&settings::OIDC_ADMIN_GROUP)
                .map(|g| g.trim().to_owned()),
            password_sign_in,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<OidcSettings>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| vars.get(name).cloned();
        let env = Env(&lookup);
        let public = vars.get("RILL_PUBLIC_URL").map(String::as_str);
        OidcSettings::read(&env, AuthMode::Accounts, public)
    }

    const BASE: [(&str, &str); 4] = [
        ("RILL_OIDC_ISSUER", "https://id.example.com/realms/staff/"),
        ("RILL_OIDC_CLIENT_ID", "rill"),
        ("RILL_OIDC_CLIENT_SECRET", "s3cret-value"),
        ("RILL_PUBLIC_URL", "https://chat.example.com/"),
    ];

    #[test]
    fn settings_are_read_with_the_redirect_worked_out() {
        let oidc = read(&BASE).expect("valid").expect("on");
        assert_eq!(oidc.issuer, "https://id.example.com/realms/staff/");
        assert_eq!(
            oidc.redirect_url,
            "https://chat.example.com/auth/oidc/callback"
        );
        assert_eq!(oidc.scopes, ["email", "profile"]);
        assert!(oidc.password_sign_in);
        assert_eq!(oidc.groups_claim, "groups");
        assert!(!format!("{oidc:?}").contains("s3cret"));
        assert!(read(&[]).expect("valid").is_none());
    }

    #[test]
    fn missing_or_unsafe_settings_are_refused_in_words() {
        let without = |name: &str| -> Vec<(&str, &str)> {
            BASE.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        let err = read(&without("RILL_OIDC_CLIENT_SECRET")).expect_err("no secret");
        assert!(err.to_string().contains("RILL_OIDC_CLIENT_SECRET"), "{err}");
        let err = read(&without("RILL_PUBLIC_URL")).expect_err("no way back");
        assert!(err.to_string().contains("RILL_OIDC_REDIRECT_URL"), "{err}");
        let mut plain = without("RILL_OIDC_ISSUER");
        plain.push(("RILL_OIDC_ISSUER", "http://id.example.com"));
        let err = read(&plain).expect_err("plain http to another host");
        assert!(err.to_string().contains("https://"), "{err}");
        let err = read(&[("RILL_PASSWORD_SIGN_IN", "off")]).expect_err("nobody could sign in");
        assert!(err.to_string().contains("RILL_OIDC_ISSUER"), "{err}");
        let mut named = BASE.to_vec();
        named.push(("RILL_OIDC_NAME", " "));
        let err = read(&named).expect_err("a button needs a name");
        assert!(err.to_string().contains("1 to 64 characters"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
