//! Reading the claims of an OIDC ID token (GitLab `id_tokens:`) before handing it to STS, so
//! the common mistakes get a clear explanation. The token itself is never shown.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;

/// The audience AWS's own docs and seed 004 use for GitLab ID tokens.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

#[derive(Debug, PartialEq, Eq)]
pub struct Claims {
    pub expires: Option<i64>,
    pub audiences: Vec<String>,
    pub subject: Option<String>,
}

/// Decodes the payload of a JWT (`header.payload.signature`) without checking the signature:
/// STS does that.
pub fn claims(token: &str, var: &str) -> Result<Claims, Error> {
    let invalid = |why: &str| Error::Aws {
        message: format!("${var} does not hold an OIDC ID token (a JWT): {why}"),
        hint: Some(id_tokens_hint(var)),
    };
    let mut parts = token.trim().split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("expected three dot-separated parts"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| invalid("its payload is not base64url"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("its payload is not JSON"))?;
    let audiences = match json.get("aud") {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Claims {
        expires: json.get("exp").and_then(serde_json::Value::as_i64),
        audiences,
        subject: json.get("sub").and_then(|v| v.as_str()).map(str::to_string),
    })
}

fn id_tokens_hint(var: &str) -> String {
    format!(
        "declare it in .gitlab-ci.yml: `id_tokens: {{{var}: {{aud: {STS_AUDIENCE}}}}}` (aud = the audience of your IAM OIDC identity provider)"
    )
}

/// Refuses tokens STS would refuse for reasons we can explain better: expired, or an audience
/// no AWS IAM OIDC provider would be set up with.
pub fn check(claims: &Claims, var: &str, now: i64) -> Result<(), Error> {
    if let Some(exp) = claims.expires
        && exp <= now
    {
        return Err(Error::Aws {
            message: format!(
                "the OIDC ID token in ${var} expired {} ago (exp {})",
                crate::aws::ecr::describe_duration(now - exp),
                crate::time::rfc3339(exp, 0)
            ),
            hint: Some(format!(
                "GitLab ID tokens live as long as the job's `timeout:`; use the token of the running job (`id_tokens: {var}:`), not one saved from another job"
            )),
        });
    }
    let plausible = |aud: &String| aud == STS_AUDIENCE || aud.starts_with("https://");
    if !claims.audiences.iter().any(plausible) {
        let found = if claims.audiences.is_empty() {
            "has no `aud` claim".to_string()
        } else {
            format!("is for audience `{}`", claims.audiences.join("`, `"))
        };
        return Err(Error::Aws {
            message: format!(
                "the OIDC ID token in ${var} {found}, which no AWS IAM OIDC provider accepts"
            ),
            hint: Some(format!(
                "set `id_tokens: {var}: aud:` in .gitlab-ci.yml to your IAM OIDC provider's audience (usually {STS_AUDIENCE} or your GitLab URL, e.g. https://gitlab.com)"
            )),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn make_token(payload: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{header}.{body}.c2lnbmF0dXJl")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_string_and_list_audiences() {
        let c = claims(
            &make_token(
                &json!({"aud": "sts.amazonaws.com", "exp": 100, "sub": "project_path:g/p"}),
            ),
            "T",
        )
        .unwrap();
        assert_eq!(c.audiences, ["sts.amazonaws.com"]);
        assert_eq!(c.expires, Some(100));
        let c = claims(
            &make_token(&json!({"aud": ["a", "https://gitlab.com"]})),
            "T",
        )
        .unwrap();
        assert_eq!(c.audiences, ["a", "https://gitlab.com"]);
        assert!(check(&c, "T", 0).is_ok());
    }

    #[test]
    fn explains_expired_and_odd_audiences_without_showing_the_token() {
        let token = make_token(&json!({"aud": "sts.amazonaws.com", "exp": 1000}));
        let expired = check(
            &claims(&token, "AWS_ID_TOKEN").unwrap(),
            "AWS_ID_TOKEN",
            1600,
        )
        .unwrap_err()
        .to_string();
        assert!(expired.contains("expired 10m ago"), "{expired}");
        assert!(!expired.contains(&token));
        let odd = check(
            &claims(&make_token(&json!({"aud": "vault", "exp": 9999})), "X").unwrap(),
            "X",
            0,
        )
        .unwrap_err();
        assert!(odd.to_string().contains("audience `vault`"), "{odd}");
        assert!(odd.hint().unwrap().contains("id_tokens: X: aud:"));
        let missing = check(&claims(&make_token(&json!({})), "X").unwrap(), "X", 0).unwrap_err();
        assert!(missing.to_string().contains("no `aud` claim"));
    }

    #[test]
    fn rejects_what_is_not_a_jwt() {
        for bad in ["", "abc", "a.b", "a.!!!.c", "a.bm90IGpzb24.c"] {
            assert!(claims(bad, "X").is_err(), "{bad}");
        }
    }
}
