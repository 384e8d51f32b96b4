//! Feed pages: the change feed's entries of one group commit stored
//! together under the seq of the first.
//!
//! Why: every key costs the writer an insert (and, in sled 0.34, where the
//! spool was kept when pages came, a leaf clone and every few inserts a
//! split). One feed key per entry was an eighth of the writer's inserts,
//! and trimming the consumed entries cost as many removals again (in an
//! LSM tree, as many tombstones). A page is one insert and one removal for a
//! group's entries (up to [`PAGE_TARGET`] bytes a page).
//!
//! Layout of a page value: [`PAGE_TAG`], the entry count (u32 BE), then
//! each entry as its length (u32 BE) and its JSON. Entries written one per
//! key by earlier versions are JSON objects, which never start with the
//! tag, so both shapes live side by side under `f/` and read alike.

/// First byte of a page (a JSON object starts with `{` or whitespace).
const PAGE_TAG: u8 = 0xFE;
const HEADER: usize = 5;

/// A page is closed once it holds this many bytes of entries: one value
/// stays a small part of a memtable and of a table's block.
pub(crate) const PAGE_TARGET: usize = 64 * 1024;

/// Splits a group's entries (in seq order, the first being `first_seq`)
/// into pages: `(seq of the page's first entry, page value)`.
pub(crate) fn pages(first_seq: u64, entries: &[Vec<u8>]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < entries.len() && (end == start || bytes + entries[end].len() <= PAGE_TARGET) {
            bytes += entries[end].len();
            end += 1;
        }
        let chunk = &entries[start..end];
        let mut page = Vec::with_capacity(HEADER + bytes + 4 * chunk.len());
        page.push(PAGE_TAG);
        page.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        for entry in chunk {
            page.extend_from_slice(&(entry.len() as u32).to_be_bytes());
            page.extend_from_slice(entry);
        }
        out.push((first_seq + start as u64, page));
        start = end;
    }
    out
}

/// How many entries the value under one feed key holds: a page's count,
/// 1 for an entry of an earlier version (or a page whose header is
/// damaged: it still occupies its own seq).
pub(crate) fn count(raw: &[u8]) -> u64 {
    match raw {
        [PAGE_TAG, a, b, c, d, ..] => u64::from(u32::from_be_bytes([*a, *b, *c, *d])).max(1),
        _ => 1,
    }
}

/// The seq of the last entry under the feed key of seq `first` (as its
/// header says; see [`count`]).
pub(crate) fn last_seq(first: u64, raw: &[u8]) -> u64 {
    first.saturating_add(count(raw) - 1)
}

/// The entries' JSON under one feed key, in seq order; `Err` with the
/// reason if a page's framing is damaged (its entries cannot be told
/// apart).
pub(crate) fn entries(raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    if raw.first() != Some(&PAGE_TAG) {
        return Ok(vec![raw]);
    }
    let n = count(raw);
    let mut out = Vec::with_capacity(n as usize);
    let mut rest = raw.get(HEADER..).ok_or("feed page header is cut short")?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_at_checked(4)
            .ok_or("feed page entry length is cut short")?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let (entry, tail) = tail
            .split_at_checked(len)
            .ok_or("feed page entry is cut short")?;
        out.push(entry);
        rest = tail;
    }
    if out.len() as u64 != n {
        return Err(format!(
            "feed page says {n} entries but holds {}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, len: usize) -> Vec<u8> {
        let mut e = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
        e.resize(len.saturating_sub(2).max(e.len()), b'x');
        e.extend_from_slice(b"\"}");
        e
    }

    #[test]
    fn pages_hold_every_entry_once_in_order() {
        let list: Vec<Vec<u8>> = (0..1000).map(|i| entry(i, 300)).collect();
        let pages = pages(41, &list);
        assert!(pages.len() > 1, "300 KB of entries spans pages");
        let mut next = 41;
        let mut seen = Vec::new();
        for (first, page) in &pages {
            assert_eq!(*first, next);
            assert!(page.len() <= PAGE_TARGET + 4 * 300 + HEADER + 300);
            let got = entries(page).unwrap();
            assert_eq!(count(page), got.len() as u64);
            next += got.len() as u64;
            seen.extend(got.into_iter().map(<[u8]>::to_vec));
        }
        assert_eq!(seen, list);
    }

    #[test]
    fn an_entry_larger_than_a_page_gets_a_page_of_its_own() {
        let list = vec![entry(0, 10), entry(1, PAGE_TARGET * 2), entry(2, 10)];
        let pages = pages(1, &list);
        let counts: Vec<(u64, u64)> = pages.iter().map(|(s, p)| (*s, count(p))).collect();
        assert_eq!(counts, [(1, 1), (2, 1), (3, 1)]);
    }

    #[test]
    fn entries_of_earlier_versions_read_as_one() {
        let old = br#"{"seq":1}"#;
        assert_eq!(count(old), 1);
        assert_eq!(entries(old).unwrap(), vec![&old[..]]);
    }

    #[test]
    fn damaged_framing_is_an_error_not_a_panic() {
        let (_, page) = pages(1, &[entry(0, 50), entry(1, 50)]).remove(0);
        for cut in 1..page.len() {
            assert!(entries(&page[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = page.clone();
        lying[4] = 3;
        assert!(entries(&lying).is_err());
        assert_eq!(count(&[PAGE_TAG, 0, 0]), 1);
    }
}
