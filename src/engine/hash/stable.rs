//! Canonical, self-delimiting encoding fed to blake3.
//!
//! Every value writes a one-byte tag and then its content; variable-length content is
//! length-prefixed, so two different values can never encode to the same bytes.

use std::collections::BTreeMap;

use crate::engine::value::Value;

/// Incremental canonical encoder over blake3.
pub struct StableHasher {
    inner: blake3::Hasher,
}

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StableHasher {
    pub fn new() -> Self {
        Self { inner: blake3::Hasher::new() }
    }

    pub fn tag(&mut self, tag: u8) {
        self.inner.update(&[tag]);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.inner.update(&(b.len() as u64).to_le_bytes());
        self.inner.update(b);
    }

    pub fn u64(&mut self, v: u64) {
        self.inner.update(&v.to_le_bytes());
    }

    pub fn finish(&self) -> blake3::Hash {
        self.inner.finalize()
    }
}

/// A type with one canonical byte encoding.
pub trait StableHash {
    fn stable_hash(&self, h: &mut StableHasher);
}

impl StableHash for u32 {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'u');
        h.u64(u64::from(*self));
    }
}

impl StableHash for u64 {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'u');
        h.u64(*self);
    }
}

impl StableHash for i64 {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'i');
        h.u64(*self as u64);
    }
}

impl StableHash for bool {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(if *self { b'T' } else { b'F' });
    }
}

impl StableHash for f64 {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'f');
        h.u64(Value::canonical_float(*self).to_bits());
    }
}

impl StableHash for str {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b's');
        h.bytes(self.as_bytes());
    }
}

impl StableHash for String {
    fn stable_hash(&self, h: &mut StableHasher) {
        self.as_str().stable_hash(h);
    }
}

impl<T: StableHash> StableHash for Option<T> {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            None => h.tag(b'N'),
            Some(v) => {
                h.tag(b'S');
                v.stable_hash(h);
            }
        }
    }
}

impl<T: StableHash> StableHash for [T] {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'[');
        h.u64(self.len() as u64);
        for v in self {
            v.stable_hash(h);
        }
    }
}

impl<T: StableHash> StableHash for Vec<T> {
    fn stable_hash(&self, h: &mut StableHasher) {
        self.as_slice().stable_hash(h);
    }
}

impl<A: StableHash, B: StableHash> StableHash for (A, B) {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'(');
        self.0.stable_hash(h);
        self.1.stable_hash(h);
    }
}

impl<V: StableHash> StableHash for BTreeMap<String, V> {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'{');
        h.u64(self.len() as u64);
        for (k, v) in self {
            k.stable_hash(h);
            v.stable_hash(h);
        }
    }
}

impl StableHash for Value {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            Value::Null => h.tag(b'0'),
            Value::Bool(b) => b.stable_hash(h),
            Value::Int(i) => i.stable_hash(h),
            Value::Float(f) => f.stable_hash(h),
            Value::Str(s) => s.stable_hash(h),
            Value::List(l) => l.stable_hash(h),
            Value::Map(m) => m.stable_hash(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest<T: StableHash + ?Sized>(v: &T) -> String {
        let mut h = StableHasher::new();
        v.stable_hash(&mut h);
        h.finish().to_hex().to_string()
    }

    #[test]
    fn int_and_float_and_string_differ() {
        let a = digest(&Value::Int(3));
        let b = digest(&Value::Float(3.0));
        let c = digest(&Value::Str("3".into()));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
    }

    #[test]
    fn negative_zero_hashes_as_zero() {
        assert_eq!(digest(&Value::Float(-0.0)), digest(&Value::Float(0.0)));
    }

    #[test]
    fn length_prefix_separates_concatenations() {
        let a = vec!["ab".to_string(), "c".to_string()];
        let b = vec!["a".to_string(), "bc".to_string()];
        assert_ne!(digest(&a), digest(&b));
    }
}
