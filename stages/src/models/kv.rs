//! Incremental decoding with a preallocated key/value cache.
//!
//! burn's built-in `forward_autoregressive_inference` recomputes the attention over the whole
//! prefix at every step. Here each layer keeps key and value buffers of shape
//! `[batch, heads, capacity, d_h]`, allocated once; a step writes the new position's keys and
//! values in place (`slice_assign` on a uniquely owned tensor reuses its storage) and attends
//! over the filled part only, so a step costs O(t) instead of O(t²) and no prefix is
//! recomputed. All rows of a batch advance in lockstep, one position per step; rows whose
//! prompt is longer are fed their prompt tokens (forced) while others already sample.

use burn::prelude::*;

use super::transformer::{Block, Transformer};

/// Per-layer key/value buffers for one batch.
pub struct KvCache {
    keys: Vec<Tensor<4>>,
    values: Vec<Tensor<4>>,
    /// Positions filled so far.
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Buffers for `batch` rows of up to `capacity` positions (at most the model's context).
    pub fn new(model: &Transformer, batch: usize, capacity: usize, device: &Device) -> KvCache {
        let capacity = capacity.min(model.context());
        let dh = model.d_model() / model.heads();
        let shape = [batch, model.heads(), capacity, dh];
        KvCache {
            keys: (0..model.layers()).map(|_| Tensor::zeros(shape, device)).collect(),
            values: (0..model.layers()).map(|_| Tensor::zeros(shape, device)).collect(),
            len: 0,
            capacity,
        }
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
        let device = tokens.device();
        let d = self.d_model();
        let position = Tensor::<1, Int>::from_data(TensorData::new(vec![t as i64], [1]), &device).reshape([1, 1]);
        let mut x = self.tok.forward(tokens.reshape([b, 1])) + self.pos.forward(position).expand([b, 1, d]);
        let keys = std::mem::take(&mut cache.keys);
        let values = std::mem::take(&mut cache.values);
        for ((block, kbuf), vbuf) in self.blocks.iter().zip(keys).zip(values) {
            let h = block.ln1.forward(x.clone());
            let q = Block::split_heads(block.q.forward(h.clone()), self.heads);
            let k = Block::split_heads(block.k.forward(h.clone()), self.heads);
            let v = Block::split_heads(block.v.forward(h), self.heads);
            let [_, heads, _, dh] = k.dims();
            let kbuf = kbuf.slice_assign([0..b, 0..heads, t..t + 1, 0..dh], k);
            let vbuf = vbuf.slice_assign([0..b, 0..heads, t..t + 1, 0..dh], v);
            let k_all = kbuf.clone().slice([0..b, 0..heads, 0..t + 1, 0..dh]);
            let v_all = vbuf.clone().slice([0..b, 0..heads, 0..t + 1, 0..dh]);
            x = x + block.attend(q, k_all, v_all, None);
            x = block.mlp(x);
            cache.keys.push(kbuf);
            cache.values.push(vbuf);
        }
        cache.len += 1;
        self.head.forward(self.ln_f.forward(x)).reshape([b, self.head.weight.dims()[1]])
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
        let mut cache = KvCache::new(&model, b, 12, &dev);
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
}
