//! The handshake query string (`EIO`, `transport`, `sid`).

/// The parameters the engine reads; everything else (`t`, user keys) is ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct EngineQuery<'a> {
    pub eio: Option<&'a str>,
    pub transport: Option<&'a str>,
    pub sid: Option<&'a str>,
}

impl<'a> EngineQuery<'a> {
    pub(crate) fn parse(query: Option<&'a str>) -> Self {
        let mut out = Self::default();
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "EIO" => out.eio = Some(value),
                "transport" => out.transport = Some(value),
                "sid" => out.sid = Some(value),
                _ => {}
            }
        }
        out
    }
}

/// A numeric query parameter (`ack=12`), if present and valid.
pub(crate) fn query_u64(query: Option<&str>, key: &str) -> Option<u64> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_keys_only() {
        let q = EngineQuery::parse(Some("EIO=4&transport=polling&t=abc&sid=xyz&x"));
        assert_eq!(q.eio, Some("4"));
        assert_eq!(q.transport, Some("polling"));
        assert_eq!(q.sid, Some("xyz"));
        assert_eq!(EngineQuery::parse(None), EngineQuery::default());
    }

    #[test]
    fn numbers() {
        assert_eq!(query_u64(Some("EIO=4&ack=12&sid=x"), "ack"), Some(12));
        assert_eq!(query_u64(Some("ack=nope"), "ack"), None);
        assert_eq!(query_u64(None, "ack"), None);
    }
}
