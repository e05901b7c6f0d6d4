//! Bit-packed numbers: a writer and a reader of values of any width from 0 to 64 bits,
//! packed low bits first with no padding, for derived data whose size on disk matters (see
//! `postings`, `hour_pieces`, `time_pieces`).
//!
//! A *number* is written as its width in 7 bits, then its bits; a *column* as its minimum
//! (a number), the width of the largest difference to it (7 bits), then each difference
//! in that width.
//!
//! `/top` over days decodes millions of values per request, so columns are read 64 values
//! at a time: the block's bits are shifted into whole words, then a routine written out for
//! its width takes each value with constant shifts and masks (see [`unpack`]).

use super::StoreError;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("bit-packed data: {what}"))
}

/// The bits needed to hold `value`.
fn width(value: u64) -> u32 {
    64 - value.leading_zeros()
}

/// A mask of the low `bits` bits (`bits` ≤ 64).
fn low_bits(bits: u32) -> u64 {
    u64::MAX.checked_shr(64 - bits).unwrap_or(0)
}

/// Appends bits to a byte vector.
#[derive(Debug, Default)]
pub struct BitWriter {
    out: Vec<u8>,
    /// Bits written so far.
    bits: usize,
}

impl BitWriter {
    /// Appends the low `bits` bits of `value`.
    pub fn put(&mut self, mut value: u64, mut bits: u32) {
        while bits > 0 {
            let offset = (self.bits % 8) as u32;
            if offset == 0 {
                self.out.push(0);
            }
            let take = (8 - offset).min(bits);
            if let Some(last) = self.out.last_mut() {
                *last |= ((value & ((1 << take) - 1)) as u8) << offset;
            }
            value >>= take;
            bits -= take;
            self.bits += take as usize;
        }
    }

    /// A writer that starts with the header every encoded piece and chunk has: its
    /// format (8 bits), then how many entries (or runs) it holds (a number).
    pub fn framed(format: u8, count: usize) -> BitWriter {
        let mut out = BitWriter::default();
        out.put(u64::from(format), 8);
        out.number(count as u64);
        out
    }

    /// Appends `value` with its width.
    pub fn number(&mut self, value: u64) {
        let bits = width(value);
        self.put(u64::from(bits), 7);
        self.put(value, bits);
    }

    /// Appends `values` as a column (see the module's doc).
    pub fn column(&mut self, values: impl Iterator<Item = u64> + Clone) {
        let base = values.clone().min().unwrap_or(0);
        let bits = width(values.clone().map(|v| v - base).max().unwrap_or(0));
        self.number(base);
        self.put(u64::from(bits), 7);
        for value in values {
            self.put(value - base, bits);
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// Reads what a [`BitWriter`] wrote.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Bits read so far.
    bits: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, bits: 0 }
    }

    /// A reader of `data` past the header [`BitWriter::framed`] wrote, with the count it
    /// holds; a format other than `format` or a count outside `1..=max` is `corrupt`.
    pub fn framed(
        data: &'a [u8],
        format: u8,
        max: usize,
        corrupt: fn(&str) -> StoreError,
    ) -> Result<(BitReader<'a>, usize), StoreError> {
        let mut reader = BitReader::new(data);
        if reader.get(8)? != u64::from(format) {
            return Err(corrupt("unknown format"));
        }
        let count = usize::try_from(reader.number()?)
            .ok()
            .filter(|count| (1..=max).contains(count))
            .ok_or_else(|| corrupt("count"))?;
        Ok((reader, count))
    }

    /// The next `bits` bits (at most 64).
    pub fn get(&mut self, bits: u32) -> Result<u64, StoreError> {
        let end = self.bits + bits as usize;
        if bits > 64 || end > self.data.len() * 8 {
            return Err(corrupt(if bits > 64 { "width" } else { "truncated" }));
        }
        // Sixteen bytes from the first hold any 64 bits after its first `shift`.
        let sixteen = sixteen_at(self.data, self.bits / 8) >> (self.bits % 8);
        self.bits = end;
        Ok(sixteen as u64 & low_bits(bits))
    }

    /// The next number.
    pub fn number(&mut self) -> Result<u64, StoreError> {
        let bits = self.get(7)? as u32;
        self.get(bits)
    }

    /// The next column of `len` values, into `out` (cleared first).
    pub fn column(&mut self, len: usize, out: &mut Vec<u64>) -> Result<(), StoreError> {
        let base = self.number()?;
        let bits = self.get(7)? as usize;
        let end = bits
            .checked_mul(len)
            .and_then(|size| size.checked_add(self.bits))
            .filter(|&end| bits <= 64 && end <= self.data.len() * 8)
            .ok_or_else(|| corrupt("column longer than the data"))?;
        unpack(self.data, self.bits, bits, len, out);
        if base != 0 {
            // The writer's values are at most u64::MAX; a sum past it (corrupt data)
            // saturates.
            for value in out.iter_mut() {
                *value = base.saturating_add(*value);
            }
        }
        self.bits = end;
        Ok(())
    }

    /// Checks that nothing but the last byte's padding is left.
    pub fn finish(self) -> Result<(), StoreError> {
        let padding = self.data.len() * 8 - self.bits;
        if padding >= 8
            || self
                .data
                .last()
                .is_some_and(|&b| padding > 0 && b >> (8 - padding) != 0)
        {
            return Err(corrupt("trailing bits"));
        }
        Ok(())
    }
}

/// Values per block of [`unpack`]: 64 values of `w` bits take exactly `w` words.
const BLOCK_VALUES: usize = 64;

/// The `len` values of `bits` bits each from bit `start` of `data`, into `out` (whose
/// values are replaced), as raw differences. Values past the end of `data` read as zeros.
///
/// The values are taken out 64 at a time: the block's bits are first shifted into whole
/// words, from which a routine made for each width takes every value with constant shifts.
fn unpack(data: &[u8], start: usize, bits: usize, len: usize, out: &mut Vec<u64>) {
    // Every value is written below: only room past the vector's length is zeroed first.
    out.resize(len.next_multiple_of(BLOCK_VALUES), 0);
    let mut words = [0u64; 64];
    for (block, values) in out.chunks_exact_mut(BLOCK_VALUES).enumerate() {
        aligned_words(
            data,
            start + block * BLOCK_VALUES * bits,
            &mut words[..bits],
        );
        if let Ok(values) = values.try_into() {
            unpack_block(bits, &words, values);
        }
    }
    out.truncate(len);
}

/// Fills `words` with the bits of `data` from bit `first` on (zeros past its end).
#[inline]
fn aligned_words(data: &[u8], first: usize, words: &mut [u64]) {
    let (mut at, shift) = (first / 8, first % 8);
    for word in words {
        // Sixteen bytes hold the word's 64 bits after the first `shift`.
        *word = (sixteen_at(data, at) >> shift) as u64;
        at += 8;
    }
}

/// The sixteen bytes of `data` from `at` as a little-endian number, zeros past its end.
#[inline]
fn sixteen_at(data: &[u8], at: usize) -> u128 {
    match data.get(at..at + 16) {
        Some(sixteen) => u128::from_le_bytes(sixteen.try_into().unwrap_or([0; 16])),
        None => padded(data, at),
    }
}

/// [`sixteen_at`] near the end of `data`.
#[cold]
fn padded(data: &[u8], at: usize) -> u128 {
    let rest = data.get(at..).unwrap_or_default();
    let mut sixteen = [0u8; 16];
    let n = rest.len().min(16);
    sixteen[..n].copy_from_slice(&rest[..n]);
    u128::from_le_bytes(sixteen)
}

/// The 64 values of `bits` bits packed in `words` (only the first `bits` words are read).
fn unpack_block(bits: usize, words: &[u64; 64], values: &mut [u64; BLOCK_VALUES]) {
    macro_rules! widths {
        ($($width:literal)*) => {
            match bits {
                $($width => unpack_width::<$width>(words, values),)*
                _ => unpack_width::<64>(words, values),
            }
        };
    }
    widths!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
        31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
        60 61 62 63);
}

/// [`unpack_block`] for width `W`: written out value by value, so that every word index
/// and shift is a constant.
#[inline(always)]
fn unpack_width<const W: usize>(words: &[u64; 64], values: &mut [u64; BLOCK_VALUES]) {
    if W == 0 {
        *values = [0; BLOCK_VALUES];
        return;
    }
    let mask = u64::MAX >> (64 - W);
    macro_rules! each {
        ($($j:literal)*) => {$({
            let (word, shift) = ($j * W / 64, $j * W % 64);
            let mut bits = words[word] >> shift;
            if shift + W > 64 {
                bits |= words[word + 1] << (64 - shift);
            }
            values[$j] = bits & mask;
        })*};
    }
    each!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
        31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
        60 61 62 63);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_columns_of_every_width_round_trip() {
        let mut w = BitWriter::default();
        let numbers = [
            0,
            1,
            2,
            127,
            128,
            255,
            256,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ];
        for n in numbers {
            w.number(n);
        }
        let columns: Vec<Vec<u64>> = vec![
            vec![7],
            vec![5, 5, 5],
            vec![0, 1, 0, 1, 1],
            vec![1_000, 1_512, 3_000, 1_001],
            vec![0, u64::MAX],
            vec![u64::MAX, u64::MAX - 3],
            (0..300).map(|i| i * 7919 % 65_537).collect(),
        ];
        for column in &columns {
            w.column(column.iter().copied());
            w.put(1, 1); // keeps the next column off any byte boundary
        }
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        for n in numbers {
            assert_eq!(r.number().expect("number"), n);
        }
        let mut out = Vec::new();
        for column in &columns {
            r.column(column.len(), &mut out).expect("column");
            assert_eq!(&out, column);
            assert_eq!(r.get(1).expect("bit"), 1);
        }
        r.finish().expect("nothing left");
    }

    #[test]
    fn columns_of_every_width_read_from_any_bit() {
        // Lengths below, at and past a block of 64 values; `out` is reused from a longer or
        // a shorter column each time.
        let columns: Vec<Vec<u64>> = (0..=64u32)
            .map(|bits| {
                let top = low_bits(bits);
                let len: u64 = [23, 200, 64, 1, 65, 130][bits as usize % 6];
                (0..len)
                    .map(|i| top - (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & top))
                    .collect()
            })
            .collect();
        let mut w = BitWriter::default();
        for (at, column) in columns.iter().enumerate() {
            w.put(1, at as u32 % 8); // each column starts at another bit of its first byte
            w.column(column.iter().copied());
        }
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        let mut out = Vec::new();
        for (at, column) in columns.iter().enumerate() {
            assert_eq!(r.get(at as u32 % 8).expect("bits"), u64::from(at % 8 > 0));
            r.column(column.len(), &mut out).expect("column");
            assert_eq!(&out, column, "column of width {at}");
        }
        r.finish().expect("nothing left");
    }

    #[test]
    fn constant_columns_take_no_bits_per_value() {
        let mut w = BitWriter::default();
        w.column(std::iter::repeat_n(123_456, 1_000));
        assert!(w.into_bytes().len() <= 4);
    }

    #[test]
    fn short_or_padded_data_is_corruption() {
        let mut w = BitWriter::default();
        w.column([3u64, 900, 17].into_iter());
        let bytes = w.into_bytes();
        for cut in 0..bytes.len() {
            let mut r = BitReader::new(&bytes[..cut]);
            assert!(r.column(3, &mut Vec::new()).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let mut r = BitReader::new(&longer);
        r.column(3, &mut Vec::new()).expect("column");
        assert!(r.finish().is_err());
        // A column claiming more values than the data holds fails before decoding any.
        let mut r = BitReader::new(&bytes);
        assert!(r.column(1 << 40, &mut Vec::new()).is_err());
    }
}
