//! Incremental decoding with a preallocated key/value cache.
//!
//! burn's built-in `forward_autoregressive_inference` recomputes the attention over the whole
//! prefix at every step. Here each layer keeps key and value buffers for `capacity` positions,
//! allocated once; a step writes the new position's keys and values in place and attends over
//! the filled part only, so a step costs O(t) instead of O(t²) and no prefix is recomputed.
//! All rows of a batch advance in lockstep, one position per step; rows whose prompt is longer
//! are fed their prompt tokens (forced) while others already sample.
//!
//! Two stores, one function:
//! - On the CPU (`flex`) the buffers are plain `Vec<f32>` and a whole step runs on the host
//!   ([`super::host`]): the weights are copied once per cache into host buffers (shared with
//!   [`KvCache::sibling`]), the matrix products call `gemm`, and attention, LayerNorm and GELU
//!   are fused loops. As burn ops, one query's attention alone was 1,024 tiny batched matmuls
//!   per layer and step. Results do not depend on the thread count.
//! - On other devices the buffers are tensors `[batch, heads, capacity, d_h]` written with
//!   `slice_assign`, and attention stays in burn ops on the device.

use std::sync::Arc;

use burn::prelude::*;

use super::host::HostModel;
use super::transformer::{Block, Transformer};

/// Host key/value buffers are recycled: a batch's cache is tens of megabytes, and a fresh
/// allocation of that size comes from the kernel as pages to fault in and zero (14% of
/// sampling time in the benchmark, `clear_page`), every time a batch starts. Freed buffers
/// wait here (up to [`pool::LIMIT`] bytes in all) for the next cache.
///
/// A recycled buffer holds another batch's keys and values; that is safe because a step reads
/// only positions that this cache wrote first (by a step or [`KvCache::copy_prefix`]).
mod pool {
    use std::sync::Mutex;

    pub const LIMIT: usize = 512 << 20;
    static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

    /// A buffer of `len` floats: a recycled one if one is large enough, else a zeroed one.
    pub fn take(len: usize) -> Vec<f32> {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        match free.iter().position(|v| v.capacity() >= len) {
            Some(i) => {
                let mut v = free.swap_remove(i);
                v.resize(len, 0.0);
                v
            }
            None => vec![0.0; len],
        }
    }

    pub fn give(buffers: impl IntoIterator<Item = Vec<f32>>) {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let mut held: usize = free.iter().map(|v| v.capacity() * 4).sum();
        for v in buffers {
            if held + v.capacity() * 4 <= LIMIT {
                held += v.capacity() * 4;
                free.push(v);
            }
        }
    }
}

impl Drop for KvCache {
    fn drop(&mut self) {
        if let Store::Host { keys, values, .. } = &mut self.store {
            pool::give(std::mem::take(keys).into_iter().chain(std::mem::take(values)));
        }
    }
}

/// Per-layer key/value buffers for one batch.
pub struct KvCache {
    store: Store,
    /// Positions filled so far.
    len: usize,
    capacity: usize,
    batch: usize,
    heads: usize,
    dh: usize,
}

enum Store {
    /// Per layer, `[batch][heads][capacity][d_h]` row-major.
    Host {
        keys: Vec<Vec<f32>>,
        values: Vec<Vec<f32>>,
        model: Arc<HostModel>,
    },
    Device {
        keys: Vec<Tensor<4>>,
        values: Vec<Tensor<4>>,
    },
}

/// Whether a device's tensors live in host memory (the host decoding path applies).
pub fn on_host(device: &Device) -> bool {
    *device == Device::flex()
}

impl KvCache {
    /// Buffers for `batch` rows of up to `capacity` positions (at most the model's context).
    pub fn new(model: &Transformer, batch: usize, capacity: usize, device: &Device) -> KvCache {
        Self::build(model, batch, capacity, device, on_host(device))
    }

    /// Tensor buffers on `device` whatever it is (what GPUs use; on the CPU, for tests and
    /// benchmarks of that path).
    pub fn with_tensor_buffers(model: &Transformer, batch: usize, capacity: usize, device: &Device) -> KvCache {
        Self::build(model, batch, capacity, device, false)
    }

    /// An empty cache for the same model and store, sharing this one's host copy of the
    /// weights (no second copy): for a prefill cache or a compacted batch.
    ///
    /// # Panics
    /// With the tensor store (GPU devices), which has no host copy to share.
    pub fn sibling(&self, batch: usize, capacity: usize) -> KvCache {
        let Store::Host { model, keys, .. } = &self.store else {
            panic!("sibling needs the host key/value store");
        };
        let capacity = capacity.min(model.context);
        let size = batch * self.heads * capacity * self.dh;
        KvCache {
            store: Store::Host {
                keys: (0..keys.len()).map(|_| pool::take(size)).collect(),
                values: (0..keys.len()).map(|_| pool::take(size)).collect(),
                model: Arc::clone(model),
            },
            len: 0,
            capacity,
            batch,
            heads: self.heads,
            dh: self.dh,
        }
    }

    fn build(model: &Transformer, batch: usize, capacity: usize, device: &Device, host: bool) -> KvCache {
        let capacity = capacity.min(model.context());
        let heads = model.heads();
        let dh = model.d_model() / heads;
        let store = if host {
            let size = batch * heads * capacity * dh;
            Store::Host {
                keys: (0..model.layers()).map(|_| pool::take(size)).collect(),
                values: (0..model.layers()).map(|_| pool::take(size)).collect(),
                model: Arc::new(HostModel::new(model)),
            }
        } else {
            let shape = [batch, heads, capacity, dh];
            Store::Device {
                keys: (0..model.layers()).map(|_| Tensor::zeros(shape, device)).collect(),
                values: (0..model.layers()).map(|_| Tensor::zeros(shape, device)).collect(),
            }
        };
        KvCache { store, len: 0, capacity, batch, heads, dh }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Copy the first `len` positions of row `src` of `from` into row `dst` of this cache, in
    /// every layer: a prefix computed once serves every row that continues it.
    ///
    /// # Panics
    /// Unless both caches use the host store with the same shape per position.
    pub fn copy_prefix(&mut self, from: &KvCache, src: usize, dst: usize, len: usize) {
        let (Store::Host { keys, values, .. }, Store::Host { keys: fk, values: fv, .. }) =
            (&mut self.store, &from.store)
        else {
            panic!("copy_prefix needs host key/value stores");
        };
        assert!(self.heads == from.heads && self.dh == from.dh, "caches of different models");
        assert!(len <= self.capacity && len <= from.capacity, "a prefix longer than a cache");
        let (dh, heads) = (self.dh, self.heads);
        for (dst_layers, src_layers) in [(keys, fk), (values, fv)] {
            for (d, s) in dst_layers.iter_mut().zip(src_layers) {
                for h in 0..heads {
                    let to = (dst * heads + h) * self.capacity * dh;
                    let from_at = (src * heads + h) * from.capacity * dh;
                    d[to..to + len * dh].copy_from_slice(&s[from_at..from_at + len * dh]);
                }
            }
        }
    }
}

impl Transformer {
    /// Feed one token per row at position `cache.len()` and return the next-token logits.
    ///
    /// # Shapes
    /// - `tokens`: `[batch]`
    /// - returns `[batch, vocab]`
    ///
    /// # Panics
    /// When the cache is full; callers stop at [`KvCache::capacity`].
    pub fn step(&self, tokens: Tensor<1, Int>, cache: &mut KvCache) -> Tensor<2> {
        let [b] = tokens.dims();
        let t = cache.len;
        assert!(t < cache.capacity, "key/value cache full at {t} positions");
        assert_eq!(b, cache.batch, "the batch a key/value cache was made for");
        let device = tokens.device();
        if let Store::Host { keys, values, model } = &mut cache.store {
            let ids: Vec<u32> = tokens
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap_or_default()
                .iter()
                .map(|&t| t as u32)
                .collect();
            let logits = model.step(&ids, &vec![t; b], keys, values, cache.capacity);
            cache.len += 1;
            return Tensor::<2>::from_data(TensorData::new(logits, [b, model.vocab]), &device);
        }
        let d = self.d_model();
        let position = Tensor::<1, Int>::from_data(TensorData::new(vec![t as i64], [1]), &device).reshape([1, 1]);
        let x = self.tok.forward(tokens.reshape([b, 1])) + self.pos.forward(position).expand([b, 1, d]);
        let logits = self.step_blocks(x, t, cache);
        cache.len += 1;
        logits
    }

    /// Feed one token per row, each row at its own position (`positions[row]`, which must be
    /// at most one past the row's last filled position), and return the next-token logits as
    /// `[batch][vocab]` on the host. Rows may rewrite a position they filled before (an idle
    /// row re-fed its last token and position changes nothing). Host store only: this is how
    /// rows that share a prefix continue from one prefilled copy of it ([`KvCache::copy_prefix`]).
    ///
    /// # Panics
    /// With the tensor store, or a position past the capacity.
    pub fn step_rows(&self, tokens: &[u32], positions: &[usize], cache: &mut KvCache) -> Vec<f32> {
        let b = tokens.len();
        assert_eq!(b, cache.batch, "the batch a key/value cache was made for");
        assert!(positions.iter().all(|&p| p < cache.capacity), "a position past the key/value cache");
        let capacity = cache.capacity;
        let Store::Host { keys, values, model } = &mut cache.store else {
            panic!("per-row positions need the host key/value store");
        };
        model.step(tokens, positions, keys, values, capacity)
    }

    /// The blocks and the output layer for one new position `t` of every row (tensor store),
    /// `x` being the embedded tokens `[batch, 1, d_model]`.
    fn step_blocks(&self, mut x: Tensor<3>, t: usize, cache: &mut KvCache) -> Tensor<2> {
        let [b, _, _] = x.dims();
        let device = x.device();
        let (heads, dh) = (cache.heads, cache.dh);
        for (l, block) in self.blocks.iter().enumerate() {
            let h = block.ln1.forward(x.clone());
            let (q, k, v) = (block.q.forward(h.clone()), block.k.forward(h.clone()), block.v.forward(h));
            let Store::Device { keys, values } = &mut cache.store else {
                unreachable!("the host store decodes in `HostModel::step`");
            };
            let (q, k, v) = (Block::split_heads(q, heads), Block::split_heads(k, heads), Block::split_heads(v, heads));
            // Take the buffers out so that `slice_assign` finds them uniquely owned.
            let kbuf = std::mem::replace(&mut keys[l], Tensor::zeros([1, 1, 1, 1], &device));
            let vbuf = std::mem::replace(&mut values[l], Tensor::zeros([1, 1, 1, 1], &device));
            let kbuf = kbuf.slice_assign([0..b, 0..heads, t..t + 1, 0..dh], k);
            let vbuf = vbuf.slice_assign([0..b, 0..heads, t..t + 1, 0..dh], v);
            let k_all = kbuf.clone().slice([0..b, 0..heads, 0..t + 1, 0..dh]);
            let v_all = vbuf.clone().slice([0..b, 0..heads, 0..t + 1, 0..dh]);
            keys[l] = kbuf;
            values[l] = vbuf;
            let att = block.attend(q, k_all, v_all, None);
            x = x + att;
            x = block.mlp(x);
        }
        self.head.forward(self.ln_f.forward(x)).reshape([b, self.vocab()])
    }

    /// Next-token logits of the last position, recomputing the whole prefix (no cache): the
    /// baseline the cache is measured against.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, t]`
    /// - returns `[batch, vocab]`
    pub fn last_logits(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let [b, t] = tokens.dims();
        let logits = self.forward(tokens);
        let v = logits.dims()[2];
        logits.slice([0..b, t - 1..t, 0..v]).reshape([b, v])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::device::seeded;
    use crate::models::transformer::TransformerConfig;

    #[test]
    fn cached_steps_equal_the_full_causal_pass() {
        let dev = Device::flex();
        let config =
            TransformerConfig::new(20).with_context(16).with_d_model(32).with_layers(2).with_heads(4).with_d_ff(64);
        let model = seeded(&dev, 3, || config.init(&dev));
        let (b, t) = (3, 9);
        let ids: Vec<i64> = (0..b * t).map(|i| ((i * 7 + 3) % 20) as i64).collect();
        let full: Vec<f32> = model
            .forward(Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [b, t]), &dev))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for mut cache in [KvCache::new(&model, b, 12, &dev), KvCache::with_tensor_buffers(&model, b, 12, &dev)] {
            for pos in 0..t {
                let col: Vec<i64> = (0..b).map(|r| ids[r * t + pos]).collect();
                let step: Vec<f32> = model
                    .step(Tensor::<1, Int>::from_data(TensorData::new(col, [b]), &dev), &mut cache)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                for r in 0..b {
                    for v in 0..20 {
                        let want = full[(r * t + pos) * 20 + v];
                        assert!((step[r * 20 + v] - want).abs() < 1e-4, "row {r} pos {pos} token {v}");
                    }
                }
            }
            assert_eq!(cache.len(), t);
        }
        // The no-cache baseline agrees too.
        let last: Vec<f32> = model
            .last_logits(Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &dev))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for r in 0..b {
            for v in 0..20 {
                assert!((last[r * 20 + v] - full[(r * t + t - 1) * 20 + v]).abs() < 1e-4);
            }
        }
    }

    /// Rows past one chunk of the host step, each at its own position (rows continue a copied
    /// prefix from a sibling cache), against the full causal pass; and bit-identical logits on
    /// 1 thread and on 3.
    #[test]
    fn host_rows_at_their_own_positions_equal_the_full_pass_on_any_thread_count() {
        let dev = Device::flex();
        let config =
            TransformerConfig::new(20).with_context(16).with_d_model(32).with_layers(2).with_heads(4).with_d_ff(64);
        let model = seeded(&dev, 5, || config.init(&dev));
        let (b, t) = (crate::models::host::CHUNK * 2 + 5, 8);
        let ids: Vec<i64> = (0..b * t).map(|i| ((i * 11 + i / 7) % 20) as i64).collect();
        let full: Vec<f32> = model
            .forward(Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [b, t]), &dev))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let run = || {
            // Row r starts at position r % 3: its earlier positions come from a prefill cache.
            let mut pre = KvCache::new(&model, b, t, &dev);
            for p in 0..2 {
                let tok: Vec<u32> = (0..b).map(|r| ids[r * t + p] as u32).collect();
                model.step_rows(&tok, &vec![p; b], &mut pre);
            }
            let mut cache = pre.sibling(b, t);
            let mut pos: Vec<usize> = (0..b).map(|r| r % 3).collect();
            for (r, &p) in pos.iter().enumerate() {
                cache.copy_prefix(&pre, r, r, p);
            }
            let mut all = Vec::new();
            while pos.iter().any(|&p| p < t) {
                let p: Vec<usize> = pos.iter().map(|&p| p.min(t - 1)).collect();
                let tok: Vec<u32> = (0..b).map(|r| ids[r * t + p[r]] as u32).collect();
                let logits = model.step_rows(&tok, &p, &mut cache);
                for r in 0..b {
                    if pos[r] < t {
                        for v in 0..20 {
                            let want = full[(r * t + p[r]) * 20 + v];
                            assert!((logits[r * 20 + v] - want).abs() < 1e-4, "row {r} pos {} token {v}", p[r]);
                        }
                    }
                }
                all.extend(logits);
                pos.iter_mut().for_each(|p| *p += 1);
            }
            all
        };
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let one = pool(1).install(run);
        let three = pool(3).install(run);
        assert!(one.iter().zip(&three).all(|(a, b)| a.to_bits() == b.to_bits()), "logits depend on the thread count");
    }
}
