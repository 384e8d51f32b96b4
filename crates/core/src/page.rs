//! The one page-size rule of every listing, whatever the API or backend.

/// Page size when the caller gives none.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page a caller may ask for.
pub const MAX_LIMIT: usize = 500;

/// The page size for an optional `limit`: 1 to [`MAX_LIMIT`], default
/// [`DEFAULT_LIMIT`]; the error is the message to show the caller.
pub fn limit(limit: Option<usize>) -> Result<usize, String> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(format!("limit must be 1 to {MAX_LIMIT}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits() {
        assert_eq!(super::limit(None), Ok(50));
        assert_eq!(super::limit(Some(1)), Ok(1));
        assert_eq!(super::limit(Some(500)), Ok(500));
        assert!(super::limit(Some(0)).is_err());
        assert!(super::limit(Some(501)).is_err());
    }
}
