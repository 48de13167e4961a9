//! Small statistics shared by the kinds: binomial intervals, AUROC, calibration error.

/// The two-sided 95% normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `successes` out of `n` trials; `(p, p)` for `n = 0` is not
/// defined, so `n = 0` gives `(0, 1)`.
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // The bounds are exact at the ends (rounding would otherwise leave 1e-18 above 0).
    let lo = if successes == 0 { 0.0 } else { (centre - half).max(0.0) };
    let hi = if p == 1.0 { 1.0 } else { (centre + half).min(1.0) };
    (lo, hi)
}

/// Area under the ROC curve of `scores` for the binary `labels` (ties count one half): the
/// probability that a random positive scores above a random negative. `None` when one class is
/// missing.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mann-Whitney U with mid-ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| labels[k]).count() as f64 * mid;
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Expected calibration error of probabilities `probs` against outcomes `labels`, over `bins`
/// equal-width bins: sum over bins of (bin share) × |mean prediction − mean outcome|.
pub fn ece(probs: &[f64], labels: &[bool], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut pred = vec![0.0; bins];
    let mut hits = vec![0.0; bins];
    for (&p, &l) in probs.iter().zip(labels) {
        let b = ((p.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        pred[b] += p;
        hits[b] += if l { 1.0 } else { 0.0 };
    }
    let n = probs.len().max(1) as f64;
    (0..bins).filter(|&b| count[b] > 0).map(|b| (pred[b] - hits[b]).abs() / n).sum()
}

/// The threshold on `scores` that classifies `labels` with the fewest errors (predict positive
/// when score >= threshold), and that error rate.
pub fn best_threshold(scores: &[f64], labels: &[bool]) -> (f64, f64) {
    if scores.is_empty() {
        return (0.5, 0.0);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let pos = labels.iter().filter(|&&l| l).count();
    // Threshold below everything: every item predicted positive, errors = negatives.
    let mut errors = labels.len() - pos;
    let mut best = (errors, f64::NEG_INFINITY);
    let mut i = 0;
    while i < order.len() {
        // Move every item with this score to the negative side.
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                errors += 1;
            } else {
                errors -= 1;
            }
            i += 1;
        }
        let next = order.get(i).map_or(f64::INFINITY, |&k| scores[k]);
        let threshold = if next.is_finite() { (s + next) / 2.0 } else { f64::INFINITY };
        if errors < best.0 {
            best = (errors, threshold);
        }
    }
    (best.1, best.0 as f64 / labels.len() as f64)
}

/// Error rate of `score >= threshold` as the prediction of `labels`.
pub fn error_at(scores: &[f64], labels: &[bool], threshold: f64) -> f64 {
    let wrong = scores.iter().zip(labels).filter(|(s, l)| (**s >= threshold) != **l).count();
    wrong as f64 / scores.len().max(1) as f64
}

/// Unbiased Pass@k from `n` samples of which `c` are right: `1 - C(n-c, k) / C(n, k)`.
pub fn pass_at(n: usize, c: usize, k: usize) -> f64 {
    if k > n {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    1.0 - (0..k).map(|i| (n - c - i) as f64 / (n - i) as f64).product::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_textbook_value_and_stays_in_bounds() {
        // 8 of 10: Wilson 95% interval (0.4902, 0.9433).
        let (lo, hi) = wilson(8, 10);
        assert!((lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson(0, 20);
        assert_eq!(lo, 0.0, "exactly: a value of 0 is inside");
        assert_eq!(wilson(64, 64).1, 1.0);
        assert!(hi > 0.1 && hi < 0.2);
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn auroc_counts_ordered_pairs_with_half_ties() {
        assert_eq!(auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        assert_eq!(auroc(&[1.0, 2.0], &[false, true]), Some(1.0));
        assert_eq!(auroc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.5, 0.7], &[true, true]), None);
    }

    #[test]
    fn ece_is_zero_when_calibrated_and_large_when_not() {
        let labels = [true, false, true, false];
        assert!(ece(&[0.5; 4], &labels, 10) < 1e-12);
        assert!((ece(&[1.0, 1.0, 1.0, 1.0], &labels, 10) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn best_threshold_separates_separable_scores() {
        let (t, err) = best_threshold(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true]);
        assert_eq!(err, 0.0);
        assert!(t > 0.2 && t < 0.7);
        assert_eq!(error_at(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true], t), 0.0);
        let (_, err) = best_threshold(&[0.5, 0.5], &[false, true]);
        assert_eq!(err, 0.5);
    }
}
