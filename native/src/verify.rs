//! The windows' Ed25519 signatures, checked in batches with the interpreter lock
//! released (streams/verifier.py `CoreVerifier`), so the worker attributes a batch
//! while other cores check it, in one process.
//!
//! The message format is schemas/signing.py's: the message ends in
//! `,"signature":"<128 lowercase hex digits>"}`, and the signed bytes are the
//! message before that member, then `}`. A verdict is libsodium's (PyNaCl's
//! `VerifyKey.verify`, which the audit uses), not merely RFC 8032's: the public
//! key must be a canonical encoding of a point of large order, S must be
//! canonical (below the group order), R must not be of small order, and
//! [S]B - [k]A must encode to R's bytes exactly (the cofactorless equation,
//! ed25519-dalek's `verify_strict`). tests/unit/streams/test_core_verify.py
//! checks the two agree on mutated and on crafted signatures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const PREFIX: &[u8] = b",\"signature\":\"";
const SUFFIX_LEN: usize = PREFIX.len() + 128 + 2; // the member, its hex digits, `"}`

/// (signed bytes without their final `}`, signature) of a message, None if it carries no signature member last.
fn split(raw: &[u8]) -> Option<(&[u8], [u8; 64])> {
    if raw.len() < SUFFIX_LEN {
        return None;
    }
    let (body, tail) = raw.split_at(raw.len() - SUFFIX_LEN);
    if &tail[..PREFIX.len()] != PREFIX || &tail[SUFFIX_LEN - 2..] != b"\"}" {
        return None;
    }
    let hex = &tail[PREFIX.len()..SUFFIX_LEN - 2];
    let mut sig = [0u8; 64];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        sig[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some((body, sig))
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None, // lowercase only, as the format says
    }
}

/// The public key, if its 32 bytes are the canonical encoding of a point (libsodium refuses the others).
fn key(public: &[u8]) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = public.try_into().ok()?;
    let point = CompressedEdwardsY(bytes).decompress()?;
    if point.compress().to_bytes() != bytes {
        return None;
    }
    VerifyingKey::from_bytes(&bytes).ok()
}

fn verify_one(raw: &[u8], public: &[u8], signed: &mut Vec<u8>, keys: &mut HashMap<Vec<u8>, Option<VerifyingKey>>)
              -> bool {
    // a batch has a few keys (one or two per site): each is decoded once
    let vk = match keys.get(public) {
        Some(k) => *k,
        None => *keys.entry(public.to_vec()).or_insert_with(|| key(public)),
    };
    let (Some((body, sig)), Some(vk)) = (split(raw), vk) else {
        return false;
    };
    signed.clear();
    signed.extend_from_slice(body);
    signed.push(b'}');
    // verify_strict: canonical S, R and A not of small order, the cofactorless equation
    vk.verify_strict(signed, &Signature::from_bytes(&sig)).is_ok()
}

/// True for each (message, 32-byte public key) whose message is signed, over its
/// exact bytes, by that key (streams.verifier.verify_signed's verdicts), checked on
/// ``threads`` threads (at least one) with the interpreter lock released.
#[pyfunction]
pub fn verify_signed(py: Python<'_>, items: Vec<(Bound<'_, PyBytes>, Bound<'_, PyBytes>)>, threads: usize)
                     -> Vec<bool> {
    verify_signed_cpu(py, items, threads).0
}

/// :func:`verify_signed`'s verdicts and the CPU seconds the checks took, summed over
/// every thread that ran them (the calling thread's alone misses the others').
#[pyfunction]
pub fn verify_signed_cpu(py: Python<'_>, items: Vec<(Bound<'_, PyBytes>, Bound<'_, PyBytes>)>, threads: usize)
                         -> (Vec<bool>, f64) {
    let slices: Vec<(&[u8], &[u8])> = items.iter().map(|(m, k)| (m.as_bytes(), k.as_bytes())).collect();
    py.detach(|| {
        let mut out = vec![false; slices.len()];
        let size = slices.len().div_ceil(threads.max(1)).max(1);
        let cpu_ns = AtomicU64::new(0);
        let check = |part: &[(&[u8], &[u8])], verdicts: &mut [bool]| {
            let t0 = thread_cpu_ns();
            let (mut signed, mut keys) = (Vec::new(), HashMap::new());
            for ((raw, public), v) in part.iter().zip(verdicts.iter_mut()) {
                *v = verify_one(raw, public, &mut signed, &mut keys);
            }
            cpu_ns.fetch_add(thread_cpu_ns().saturating_sub(t0), Ordering::Relaxed);
        };
        // the first part in the calling thread, the others on new ones
        std::thread::scope(|s| {
            let mut parts = slices.chunks(size).zip(out.chunks_mut(size));
            let first = parts.next();
            for (part, verdicts) in parts {
                s.spawn(|| check(part, verdicts));
            }
            if let Some((part, verdicts)) = first {
                check(part, verdicts);
            }
        });
        (out, cpu_ns.into_inner() as f64 / 1e9)
    })
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given, and CLOCK_THREAD_CPUTIME_ID is always there on Linux
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
