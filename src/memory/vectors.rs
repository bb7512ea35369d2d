//! Fact vectors held in memory for recall by meaning, so a question costs one scan of a compact
//! matrix instead of reading and decoding every stored blob.
//!
//! Each vector is kept twice, small: as int8 codes with a per-row scale (384 bytes; the cosine
//! from them is within ~0.002 of the float one) and as 384 sign bits (48 bytes). Up to
//! `EXACT_ROWS` rows every row is scored from its codes. Above that, the sign bits' Hamming
//! distance (a popcount per 64 dimensions) picks the `CANDIDATES` nearest rows and only those are
//! scored from their codes: 100k facts cost ~5 MB of bits read per question instead of 150 MB
//! of floats. That pre-selection is approximate: a fact can, rarely, be missed at that size.

use std::collections::HashMap;

/// At or below this many rows every row is scored exactly (from its int8 codes).
const EXACT_ROWS: usize = 4096;
/// Rows the Hamming pre-selection keeps for exact scoring.
const CANDIDATES: usize = 512;

#[derive(Default)]
pub(crate) struct VectorIndex {
    dim: usize,
    ids: Vec<i64>,
    pos: HashMap<i64, usize>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    bits: Vec<u64>,
}

/// A query vector prepared once for scoring many rows.
pub(crate) struct Query {
    codes: Vec<i8>,
    scale: f32,
    bits: Vec<u64>,
}

fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    (v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect(), scale)
}

fn sign_bits(v: &[f32]) -> Vec<u64> {
    let mut bits = vec![0u64; v.len().div_ceil(64)];
    for (i, x) in v.iter().enumerate() {
        if *x > 0.0 {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    bits
}

#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    // Sixteen independent lanes so the compiler vectorises without reassociating floats.
    let mut acc = [0i32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (a16.remainder(), b16.remainder());
    for (x, y) in a16.zip(b16) {
        for i in 0..16 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    acc.iter().sum::<i32>() + ra.iter().zip(rb).map(|(x, y)| *x as i32 * *y as i32).sum::<i32>()
}

#[inline(always)]
fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// `f` compiled for AVX2 + POPCNT when the CPU has them (x86_64 builds target the 2003
/// baseline), else as is. Apple Silicon's NEON is always on.
macro_rules! fast {
    ($name:ident, $generic:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,popcnt")]
                unsafe fn wide($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt") {
                    // SAFETY: the features were just detected on this CPU.
                    return unsafe { wide($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

#[inline(always)]
fn score_rows_generic(codes: &[i8], dim: usize, rows: &[usize], q: &[i8], out: &mut Vec<i32>) {
    out.extend(rows.iter().map(|&r| dot_i8(q, &codes[r * dim..(r + 1) * dim])));
}
fast!(score_rows, score_rows_generic, (codes: &[i8], dim: usize, rows: &[usize], q: &[i8], out: &mut Vec<i32>) -> ());

#[inline(always)]
fn score_all_generic(codes: &[i8], dim: usize, q: &[i8], out: &mut Vec<i32>) {
    out.extend(codes.chunks_exact(dim).map(|row| dot_i8(q, row)));
}
fast!(score_all, score_all_generic, (codes: &[i8], dim: usize, q: &[i8], out: &mut Vec<i32>) -> ());

#[inline(always)]
fn hamming_all_generic(bits: &[u64], words: usize, q: &[u64], out: &mut Vec<u32>) {
    out.extend(bits.chunks_exact(words).map(|row| hamming(q, row)));
}
fast!(hamming_all, hamming_all_generic, (bits: &[u64], words: usize, q: &[u64], out: &mut Vec<u32>) -> ());

impl VectorIndex {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Bytes held (what `roxy memory bench` reports).
    pub(crate) fn bytes(&self) -> usize {
        self.codes.len() + self.bits.len() * 8 + self.scales.len() * 4 + self.ids.len() * 8 * 3
    }

    fn words(&self) -> usize {
        self.dim.div_ceil(64)
    }

    /// Adds or replaces the vector of `id`. A vector of another dimension than the index's is
    /// ignored (that fact is still found by its words).
    pub(crate) fn upsert(&mut self, id: i64, v: &[f32]) {
        if self.ids.is_empty() {
            self.dim = v.len();
        }
        if v.len() != self.dim || v.is_empty() {
            return;
        }
        let (codes, scale) = quantise(v);
        let bits = sign_bits(v);
        let (dim, words) = (self.dim, self.words());
        match self.pos.get(&id) {
            Some(&row) => {
                self.codes[row * dim..(row + 1) * dim].copy_from_slice(&codes);
                self.bits[row * words..(row + 1) * words].copy_from_slice(&bits);
                self.scales[row] = scale;
            }
            None => {
                self.pos.insert(id, self.ids.len());
                self.ids.push(id);
                self.codes.extend(codes);
                self.bits.extend(bits);
                self.scales.push(scale);
            }
        }
    }

    /// Removes `id` (the last row moves into its place).
    pub(crate) fn remove(&mut self, id: i64) {
        let Some(row) = self.pos.remove(&id) else { return };
        let last = self.ids.len() - 1;
        let (dim, words) = (self.dim, self.words());
        if row != last {
            self.codes.copy_within(last * dim..(last + 1) * dim, row * dim);
            self.bits.copy_within(last * words..(last + 1) * words, row * words);
            self.scales[row] = self.scales[last];
            self.ids[row] = self.ids[last];
            self.pos.insert(self.ids[row], row);
        }
        self.ids.truncate(last);
        self.codes.truncate(last * dim);
        self.bits.truncate(last * words);
        self.scales.truncate(last);
    }

    pub(crate) fn clear(&mut self) {
        *self = VectorIndex::default();
    }

    pub(crate) fn query(&self, v: &[f32]) -> Option<Query> {
        if v.len() != self.dim || self.ids.is_empty() {
            return None;
        }
        let (codes, scale) = quantise(v);
        Some(Query { codes, scale, bits: sign_bits(v) })
    }

    /// The cosine between the query and `id`'s vector, if it has one.
    pub(crate) fn score(&self, q: &Query, id: i64) -> Option<f32> {
        let &row = self.pos.get(&id)?;
        let mut out = Vec::with_capacity(1);
        score_rows(&self.codes, self.dim, &[row], &q.codes, &mut out);
        Some(out[0] as f32 * q.scale * self.scales[row])
    }

    /// The `k` rows nearest the query with their cosine, best first.
    pub(crate) fn top(&self, q: &Query, k: usize) -> Vec<(i64, f32)> {
        let mut dots = Vec::new();
        let rows: Vec<usize> = if self.ids.len() <= EXACT_ROWS {
            score_all(&self.codes, self.dim, &q.codes, &mut dots);
            (0..self.ids.len()).collect()
        } else {
            let mut distances = Vec::with_capacity(self.ids.len());
            hamming_all(&self.bits, self.words(), &q.bits, &mut distances);
            let mut order: Vec<usize> = (0..self.ids.len()).collect();
            order.select_nth_unstable_by_key(CANDIDATES, |&r| distances[r]);
            order.truncate(CANDIDATES);
            score_rows(&self.codes, self.dim, &order, &q.codes, &mut dots);
            order
        };
        let mut scored: Vec<(i64, f32)> = rows.iter().zip(&dots).map(|(&r, &d)| (self.ids[r], d as f32 * q.scale * self.scales[r])).collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        crate::memory::embed::normalise(&mut v);
        v
    }

    fn exact(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn scores_match_the_float_cosine_and_updates_apply() {
        let mut index = VectorIndex::default();
        let vectors: Vec<Vec<f32>> = (0..300).map(|i| unit(i, 384)).collect();
        for (i, v) in vectors.iter().enumerate() {
            index.upsert(i as i64, v);
        }
        let q = unit(9999, 384);
        let prepared = index.query(&q).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            let got = index.score(&prepared, i as i64).unwrap();
            assert!((got - exact(&q, v)).abs() < 0.003, "row {i}: {got} vs {}", exact(&q, v));
        }
        // The exact nearest is first.
        let best = (0..300).max_by(|&a, &b| exact(&q, &vectors[a]).total_cmp(&exact(&q, &vectors[b]))).unwrap();
        assert_eq!(index.top(&prepared, 3)[0].0, best as i64);
        // A vector found as itself scores ~1; removing it takes it out; replacing moves it.
        let me = index.query(&vectors[42]).unwrap();
        assert_eq!(index.top(&me, 1)[0].0, 42);
        index.remove(42);
        assert_ne!(index.top(&me, 1)[0].0, 42);
        assert_eq!(index.len(), 299);
        index.upsert(7, &vectors[42]);
        assert_eq!(index.top(&me, 1)[0].0, 7);
        // Every other row still scores right after the swap-removal.
        let last = index.score(&prepared, 299).unwrap();
        assert!((last - exact(&q, &vectors[299])).abs() < 0.003);
        index.upsert(1, &[1.0, 0.0]);
        assert!(index.score(&prepared, 1).is_some(), "a vector of another size is ignored");
    }

    #[test]
    fn large_indexes_preselect_by_sign_bits_and_still_find_near_vectors() {
        let mut index = VectorIndex::default();
        let n = 20_000;
        for i in 0..n {
            index.upsert(i, &unit(i as u64, 384));
        }
        // Queries close to a stored vector (a paraphrase) find it through the pre-selection.
        for target in [3, 4_321, 19_999] {
            let mut q = unit(target as u64, 384);
            let noise = unit(target as u64 + 1_000_000, 384);
            q.iter_mut().zip(&noise).for_each(|(a, b)| *a += 0.5 * b);
            crate::memory::embed::normalise(&mut q);
            let top = index.top(&index.query(&q).unwrap(), 5);
            assert_eq!(top[0].0, target, "{top:?}");
        }
    }
}

/// Real MiniLM vectors above `EXACT_ROWS`, where the sign-bit pre-selection is used: the fact
/// it ranks first is as close to the question as the exact float scan's best. Slow (embeds
/// ~6,000 sentences): `cargo test -j2 --lib vectors -- --ignored --nocapture`.
#[cfg(test)]
mod minilm_check {
    use super::*;
    use crate::memory::{Embedder, MiniLm};

    #[test]
    #[ignore]
    fn preselection_agrees_with_the_exact_scan_on_minilm_vectors() {
        let dir = std::env::var("ROXY_MODELS_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.roxy/models").into());
        let model = MiniLm::load(std::path::Path::new(&dir)).expect("MiniLM installed (roxy models fetch)");
        let names = ["Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Mona", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara"];
        let things = [
            "birthday is in", "favourite colour is", "car is parked on", "dentist appointment is on", "flight leaves on", "cat is called", "phone number ends in",
            "allergy is to", "gym class is on", "book club meets on", "favourite food is", "office is on floor", "train arrives at", "shoe size is", "lucky number is",
        ];
        let values = ["March", "blue", "level 3", "Tuesday", "Friday evening", "Miso", "42", "peanuts", "Monday", "the first Sunday", "ramen", "seven", "noon", "nine", "thirteen", "green", "June", "Pepper", "oat milk", "Thursday"];
        let mut texts = Vec::new();
        for (i, n) in names.iter().enumerate() {
            for (j, t) in things.iter().enumerate() {
                for k in 0..20 {
                    texts.push(format!("{n}'s {t} {}", values[(i + j * 3 + k) % values.len()]));
                }
            }
        }
        let vectors: Vec<Vec<f32>> = texts.iter().map(|t| model.embed(t).unwrap()).collect();
        let mut index = VectorIndex::default();
        for (i, v) in vectors.iter().enumerate() {
            index.upsert(i as i64, v);
        }
        assert!(texts.len() > EXACT_ROWS);
        let questions: Vec<String> = (0..100).map(|q| format!("what is {}'s {}?", names[q % names.len()], things[(q * 7) % things.len()].split(' ').take(2).collect::<Vec<_>>().join(" "))).collect();
        let mut worst = 0f32;
        let mut agree = 0;
        for q in &questions {
            let v = model.embed(q).unwrap();
            let exact = vectors.iter().map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>()).fold(f32::MIN, f32::max);
            let (id, _) = index.top(&index.query(&v).unwrap(), 1)[0];
            let found: f32 = vectors[id as usize].iter().zip(&v).map(|(a, b)| a * b).sum();
            worst = worst.max(exact - found);
            agree += (exact - found < 0.01) as usize;
        }
        eprintln!("{} facts, {} questions: first hit within 0.01 of the exact best for {agree}; largest shortfall {worst:.4}", texts.len(), questions.len());
        assert!(agree >= 95, "{agree}/100");
    }
}
