//! The chain's text forms, as schemas/chain.py and docs/ledger.md define them:
//! an entry's id, its line and its digest. This is the writer's implementation;
//! `ledger verify` checks what it wrote with schemas/chain.py, an independent
//! one, and both are held to docs/chain-vectors.json.

use sha2::{Digest, Sha256};

pub type Hex = [u8; 64];

const HEX: &[u8; 16] = b"0123456789abcdef";

pub fn hex(digest: &[u8]) -> Hex {
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> Hex {
    hex(&Sha256::digest(data))
}

/// Decimal digits of an unsigned integer, as Python's str() prints it.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// An integer count of 10^-scale as plain fixed-point text: 5 at scale 3 is
/// "0.005", -5 at scale 6 "-0.000005"; every digit of the scale, never an
/// exponent (schemas.chain.fixed).
pub fn push_fixed(out: &mut Vec<u8>, units: i64, scale: u32) {
    if units < 0 {
        out.push(b'-');
    }
    let abs = units.unsigned_abs();
    let power = 10u64.pow(scale);
    push_u64(out, abs / power);
    out.push(b'.');
    let mut frac = [b'0'; 19];
    let mut rest = abs % power;
    for i in (0..scale as usize).rev() {
        frac[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&frac[..scale as usize]);
}

pub fn fixed(units: i64, scale: u32) -> String {
    let mut out = Vec::with_capacity(24);
    push_fixed(&mut out, units, scale);
    String::from_utf8(out).expect("ASCII")
}

/// The units of a plain fixed-point text with exactly `scale` places (what
/// `fixed` prints), or None for any other text.
pub fn parse_fixed(text: &str, scale: u32) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = body.split_once('.')?;
    if whole.is_empty()
        || frac.len() != scale as usize
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut units: i128 = 0;
    for b in whole.bytes().chain(frac.bytes()) {
        units = units.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    i64::try_from(if negative { -units } else { units }).ok()
}

/// Deterministic entry id: SHA-256 of window id, GPU, account kind, account,
/// job and member joined by U+001F (streams.processing.entry_id).
pub fn entry_id(window_id: &str, gpu_uuid: &str, kind: &str, account: &str, job_id: &str, member: &str) -> Hex {
    let mut h = Sha256::new();
    for (i, part) in [window_id, gpu_uuid, kind, account, job_id, member].iter().enumerate() {
        if i > 0 {
            h.update(b"\x1f");
        }
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

/// The fields of one entry's chain line, in the line's order.
pub struct LineFields<'a> {
    pub entry_id: &'a [u8],
    pub window_id: &'a str,
    pub site_id: &'a str,
    pub gpu_uuid: &'a str,
    pub job_id: &'a str,
    pub account_kind: &'a str,
    pub account: &'a str,
    pub project: &'a str,
    pub member: &'a str,
    pub energy_mj: i64,
    pub gpu_ms: i64,
    pub hours: i64,
    pub cost: i64,
    pub carbon: i64,
    pub config_hash: &'a str,
    pub account_source: &'a str,
}

pub const HOURS_SCALE: u32 = 9;
pub const COST_SCALE: u32 = 6;
pub const CARBON_SCALE: u32 = 3;

/// The entry line (UTF-8, fields joined by '|', ending '\n') into `out`.
pub fn entry_line(out: &mut Vec<u8>, f: &LineFields) {
    out.clear();
    for text in [f.entry_id, f.window_id.as_bytes(), f.site_id.as_bytes(), f.gpu_uuid.as_bytes(),
                 f.job_id.as_bytes(), f.account_kind.as_bytes(), f.account.as_bytes(), f.project.as_bytes(),
                 f.member.as_bytes()] {
        out.extend_from_slice(text);
        out.push(b'|');
    }
    push_i64(out, f.energy_mj);
    out.push(b'|');
    push_i64(out, f.gpu_ms);
    out.push(b'|');
    push_fixed(out, f.hours, HOURS_SCALE);
    out.push(b'|');
    push_fixed(out, f.cost, COST_SCALE);
    out.push(b'|');
    push_fixed(out, f.carbon, CARBON_SCALE);
    out.push(b'|');
    out.extend_from_slice(f.config_hash.as_bytes());
    out.push(b'|');
    out.extend_from_slice(f.account_source.as_bytes());
    out.push(b'\n');
}

/// SHA-256 of the digests' hex texts one after the other (schemas.chain.entries_hash).
pub fn digests_hash<'a>(digests: impl Iterator<Item = &'a Hex>) -> Hex {
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_texts() {
        for (units, scale, text) in [(0, 9, "0.000000000"), (5, 9, "0.000000005"), (1_362_624, 6, "1.362624"),
                                     (321_860, 3, "321.860"), (-5, 6, "-0.000005"), (-1_500, 3, "-1.500"),
                                     (i64::MIN, 3, "-9223372036854775.808")] {
            assert_eq!(fixed(units, scale), text);
            assert_eq!(parse_fixed(text, scale), Some(units));
        }
        assert_eq!(parse_fixed("1.5", 3), None);
        assert_eq!(parse_fixed(".500", 3), None);
        assert_eq!(parse_fixed("1e3.000", 3), None);
    }
}
