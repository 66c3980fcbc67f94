//! Which provider and API endpoint a request is for, from its host and path.
//!
//! Configured routes win; then well-known hosts; then well-known paths (so a local gateway on
//! `127.0.0.1` in front of OpenRouter still works). See `docs/` for the table.

use serde::{Deserialize, Serialize};

/// The upstream API family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// openrouter.ai (OpenAI-compatible, reports `usage.cost`).
    OpenRouter,
    /// api.openai.com or any OpenAI-compatible upstream.
    OpenAi,
    /// api.anthropic.com.
    Anthropic,
    /// generativelanguage.googleapis.com.
    Gemini,
    /// Not recognised.
    Unknown,
}

impl Provider {
    /// The name used in records: `openrouter`, `openai`, `anthropic`, `gemini`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenRouter => "openrouter",
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Unknown => "unknown",
        }
    }

    /// The prefix OpenRouter gives this provider's models (`openai/gpt-4o`).
    pub fn openrouter_prefix(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi | Provider::Unknown => Some("openai"),
            Provider::Anthropic => Some("anthropic"),
            Provider::Gemini => Some("google"),
            Provider::OpenRouter => None,
        }
    }

    /// True for the providers that speak OpenAI's chat-completions dialect.
    pub fn is_openai_style(self) -> bool {
        matches!(
            self,
            Provider::OpenRouter | Provider::OpenAi | Provider::Unknown
        )
    }
}

/// The API operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `…/chat/completions`.
    ChatCompletions,
    /// `…/responses` (OpenAI Responses API).
    Responses,
    /// `…/messages` (Anthropic Messages).
    Messages,
    /// `…:generateContent` (Gemini).
    GenerateContent,
    /// `…:streamGenerateContent` (Gemini).
    StreamGenerateContent,
    /// Anything else (not metered).
    Other,
}

impl Endpoint {
    /// The name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses => "responses",
            Endpoint::Messages => "messages",
            Endpoint::GenerateContent => "generate_content",
            Endpoint::StreamGenerateContent => "stream_generate_content",
            Endpoint::Other => "other",
        }
    }

    /// The endpoint of a request: [`Endpoint::from_path`] for `POST`, else `Other` (not metered).
    pub fn of_request(method: &str, path: &str) -> Endpoint {
        if method.eq_ignore_ascii_case("POST") {
            Endpoint::from_path(path)
        } else {
            Endpoint::Other
        }
    }

    /// Detects the endpoint from a request path (query ignored).
    pub fn from_path(path: &str) -> Endpoint {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Endpoint::ChatCompletions
        } else if path.ends_with("/responses") {
            Endpoint::Responses
        } else if path.ends_with("/messages") {
            Endpoint::Messages
        } else if path.ends_with(":streamGenerateContent") {
            Endpoint::StreamGenerateContent
        } else if path.ends_with(":generateContent") {
            Endpoint::GenerateContent
        } else {
            Endpoint::Other
        }
    }
}

/// A configured rule: requests whose host and path match are for `provider`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Host (`:authority`, port ignored) to match exactly; any host if absent.
    #[serde(default)]
    pub host: Option<alloc::string::String>,
    /// Path prefix to match; any path if absent.
    #[serde(default)]
    pub path_prefix: Option<alloc::string::String>,
    /// The provider these requests go to.
    pub provider: Provider,
}

/// Detects the provider: configured `routes` first, then known hosts, then known paths.
pub fn detect(routes: &[Route], host: &str, path: &str) -> Provider {
    let host = strip_port(host);
    for route in routes {
        let host_ok = route
            .host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host));
        let path_ok = route
            .path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p));
        if host_ok && path_ok {
            return route.provider;
        }
    }
    let host = host.to_ascii_lowercase();
    if host == "openrouter.ai" || host.ends_with(".openrouter.ai") {
        Provider::OpenRouter
    } else if host == "api.openai.com" {
        Provider::OpenAi
    } else if host == "api.anthropic.com" {
        Provider::Anthropic
    } else if host == "generativelanguage.googleapis.com" {
        Provider::Gemini
    } else if path.starts_with("/api/v1/") {
        Provider::OpenRouter
    } else if path.starts_with("/v1beta/") {
        Provider::Gemini
    } else if path.starts_with("/v1/messages") {
        Provider::Anthropic
    } else if path.starts_with("/v1/") {
        Provider::OpenAi
    } else {
        Provider::Unknown
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn known_hosts_and_paths() {
        assert_eq!(
            detect(&[], "openrouter.ai", "/api/v1/chat/completions"),
            Provider::OpenRouter
        );
        assert_eq!(
            detect(&[], "api.openai.com:443", "/v1/chat/completions"),
            Provider::OpenAi
        );
        assert_eq!(
            detect(&[], "127.0.0.1:8080", "/api/v1/chat/completions"),
            Provider::OpenRouter
        );
        assert_eq!(
            detect(&[], "127.0.0.1:8080", "/v1/chat/completions"),
            Provider::OpenAi
        );
        assert_eq!(detect(&[], "gw", "/v1/messages"), Provider::Anthropic);
        assert_eq!(
            detect(&[], "gw", "/v1beta/models/gemini-2.5-flash:generateContent"),
            Provider::Gemini
        );
        assert_eq!(detect(&[], "gw", "/healthz"), Provider::Unknown);
    }

    #[test]
    fn configured_routes_win() {
        let routes = vec![Route {
            host: Some("llm.internal".into()),
            path_prefix: Some("/or/".into()),
            provider: Provider::OpenRouter,
        }];
        assert_eq!(
            detect(&routes, "llm.internal:80", "/or/v1/chat/completions"),
            Provider::OpenRouter
        );
        assert_eq!(
            detect(&routes, "llm.internal", "/v1/chat/completions"),
            Provider::OpenAi
        );
    }

    #[test]
    fn endpoints_from_paths() {
        assert_eq!(
            Endpoint::from_path("/api/v1/chat/completions?x=1"),
            Endpoint::ChatCompletions
        );
        assert_eq!(Endpoint::from_path("/v1/responses"), Endpoint::Responses);
        assert_eq!(Endpoint::from_path("/v1/messages"), Endpoint::Messages);
        assert_eq!(
            Endpoint::from_path("/v1beta/models/g:streamGenerateContent?alt=sse"),
            Endpoint::StreamGenerateContent
        );
        assert_eq!(
            Endpoint::from_path("/v1beta/models/g:generateContent"),
            Endpoint::GenerateContent
        );
        assert_eq!(Endpoint::from_path("/api/v1/models"), Endpoint::Other);
    }
}
