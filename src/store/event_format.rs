//! The bytes of an event record (formats [`EVENT_FORMAT`] and [`EVENT_FORMAT_ROUTED`]),
//! laid out by hand: the log is
//! most of the store, and bincode spends a byte on every `Option` (an event has fifteen,
//! most of them empty) and five on any number above 65,535. Here one bitmap says which
//! fields are present and numbers are LEB128 varints.
//!
//! ```text
//! format (1) | ts (6, big-endian ms) | received_delta (zigzag varint) | type_id (varint)
//! | outcome (1) | present (2, little-endian bitmap) | each present field, in bit order
//! ```
//!
//! Numbers are varints (signed ones zigzag first), strings a varint length and UTF-8,
//! a [`Text`] one varint `id << 1` or `length << 1 | 1` followed by the text, an IP a byte
//! 4 or 6 and its octets, scopes a varint count and that many texts. The route is a
//! varint (its per-tenant number) in format [`EVENT_FORMAT_ROUTED`], which the writer
//! writes for every record with a route since schema 7, and a [`Text`] in format
//! [`EVENT_FORMAT`] (records written before, and records without a route). Decoding checks
//! every length against the bytes left and refuses trailing bytes: a damaged record is
//! corruption, never a panic or an allocation larger than the record.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::{EVENT_FORMAT, EVENT_FORMAT_ROUTED};
use super::records::{EventRecord, RecordHead, RouteRef, Text};
use super::StoreError;

// Bits of the presence bitmap.
const CLIENT: u16 = 1 << 0;
const ID: u16 = 1 << 1;
const TOKEN: u16 = 1 << 2;
const USER: u16 = 1 << 3;
const DEVICE: u16 = 1 << 4;
const GRANT: u16 = 1 << 5;
const SCOPES: u16 = 1 << 6;
const IP: u16 = 1 << 7;
const AGENT: u16 = 1 << 8;
const METHOD: u16 = 1 << 9;
const ROUTE: u16 = 1 << 10;
const STATUS: u16 = 1 << 11;
const ERROR: u16 = 1 << 12;
const EXPIRES: u16 = 1 << 13;
const DURATION: u16 = 1 << 14;
const CONTEXT: u16 = 1 << 15;

/// Largest `ts` six bytes hold (milliseconds up to the year 10889; ingest accepts none
/// later than a few minutes from now).
const MAX_TS: u64 = (1 << 48) - 1;

pub fn encode(r: &EventRecord) -> Result<Vec<u8>, StoreError> {
    if r.ts > MAX_TS {
        return Err(StoreError::Corrupt(format!(
            "time {} does not fit 48 bits",
            r.ts
        )));
    }
    let mut out = Out(Vec::with_capacity(64));
    out.0.push(match r.route {
        Some(RouteRef::Number(_)) => EVENT_FORMAT_ROUTED,
        _ => EVENT_FORMAT,
    });
    out.0.extend_from_slice(&r.ts.to_be_bytes()[2..]);
    out.signed(r.received_delta);
    out.varint(u64::from(r.type_id));
    out.0.push(r.outcome);
    let bit = |present: bool, bit: u16| if present { bit } else { 0 };
    let present = bit(r.client.is_some(), CLIENT)
        | bit(r.id.is_some(), ID)
        | bit(r.token.is_some(), TOKEN)
        | bit(r.user.is_some(), USER)
        | bit(r.device_id.is_some(), DEVICE)
        | bit(r.grant.is_some(), GRANT)
        | bit(!r.scopes.is_empty(), SCOPES)
        | bit(r.ip.is_some(), IP)
        | bit(r.user_agent.is_some(), AGENT)
        | bit(r.method.is_some(), METHOD)
        | bit(r.route.is_some(), ROUTE)
        | bit(r.status.is_some(), STATUS)
        | bit(r.error.is_some(), ERROR)
        | bit(r.expires_delta.is_some(), EXPIRES)
        | bit(r.duration_ms.is_some(), DURATION)
        | bit(r.context.is_some(), CONTEXT);
    out.0.extend_from_slice(&present.to_le_bytes());
    if let Some(client) = r.client {
        out.varint(u64::from(client));
    }
    if let Some(id) = &r.id {
        out.string(id);
    }
    if let Some(token) = r.token {
        out.varint(token);
    }
    if let Some(user) = r.user {
        out.varint(u64::from(user));
    }
    if let Some(device) = &r.device_id {
        out.string(device);
    }
    if let Some(grant) = r.grant {
        out.varint(u64::from(grant));
    }
    if !r.scopes.is_empty() {
        out.varint(r.scopes.len() as u64);
        for scope in &r.scopes {
            out.text(scope);
        }
    }
    if let Some(ip) = r.ip {
        match ip {
            IpAddr::V4(v4) => {
                out.0.push(4);
                out.0.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.0.push(6);
                out.0.extend_from_slice(&v6.octets());
            }
        }
    }
    if let Some(agent) = &r.user_agent {
        out.text(agent);
    }
    if let Some(method) = r.method {
        out.varint(u64::from(method));
    }
    match &r.route {
        Some(RouteRef::Number(number)) => out.varint(u64::from(*number)),
        Some(RouteRef::Text(route)) => out.text(route),
        None => {}
    }
    if let Some(status) = r.status {
        out.varint(u64::from(status));
    }
    if let Some(error) = &r.error {
        out.text(error);
    }
    if let Some(expires) = r.expires_delta {
        out.signed(expires);
    }
    if let Some(duration) = r.duration_ms {
        out.varint(u64::from(duration));
    }
    if let Some(context) = &r.context {
        out.string(context);
    }
    Ok(out.0)
}

/// The leading fields of a record, its format and presence bitmap, and the reader
/// positioned after them.
fn head(bytes: &[u8]) -> Result<(RecordHead, u8, u16, In<'_>), StoreError> {
    let mut input = In(bytes);
    let format = input.byte()?;
    if format != EVENT_FORMAT && format != EVENT_FORMAT_ROUTED {
        return Err(StoreError::Corrupt(format!(
            "event record has unknown format {format}"
        )));
    }
    let mut ts = [0u8; 8];
    ts[2..].copy_from_slice(input.take(6)?);
    let ts = u64::from_be_bytes(ts);
    let received_delta = input.signed()?;
    let type_id = input.u32()?;
    let outcome = input.byte()?;
    let present = u16::from_le_bytes([input.byte()?, input.byte()?]);
    let client = if present & CLIENT != 0 {
        Some(input.u32()?)
    } else {
        None
    };
    let head = RecordHead {
        ts,
        received_delta,
        type_id,
        outcome,
        client,
    };
    Ok((head, format, present, input))
}

pub fn decode_head(bytes: &[u8]) -> Result<RecordHead, StoreError> {
    head(bytes).map(|(head, ..)| head)
}

/// A [`Text`] as it lies in a record's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRef<'a> {
    Id(u32),
    Inline(&'a str),
}

pub fn decode(bytes: &[u8]) -> Result<EventRecord, StoreError> {
    let (head, format, present, mut input) = head(bytes)?;
    let has = |bit: u16| present & bit != 0;
    let id = has(ID).then(|| input.string()).transpose()?;
    let token = has(TOKEN).then(|| input.varint()).transpose()?;
    let user = has(USER).then(|| input.u32()).transpose()?;
    let device_id = has(DEVICE).then(|| input.string()).transpose()?;
    let grant = has(GRANT).then(|| input.u32()).transpose()?;
    let mut scopes = Vec::new();
    if has(SCOPES) {
        let count = input.varint()?;
        // Each scope takes at least a byte: a count beyond the bytes left is damage.
        if count == 0 || count > input.0.len() as u64 {
            return Err(corrupt("scope count"));
        }
        for _ in 0..count {
            scopes.push(input.text()?);
        }
    }
    let ip = has(IP).then(|| input.ip()).transpose()?;
    let user_agent = has(AGENT).then(|| input.text()).transpose()?;
    let method = has(METHOD).then(|| input.u32()).transpose()?;
    let route = match (has(ROUTE), format) {
        (false, _) => None,
        (true, EVENT_FORMAT_ROUTED) => Some(RouteRef::Number(input.u32()?)),
        (true, _) => Some(RouteRef::Text(input.text()?)),
    };
    let status = has(STATUS)
        .then(|| {
            let status = input.varint()?;
            u16::try_from(status).map_err(|_| corrupt("status"))
        })
        .transpose()?;
    let error = has(ERROR).then(|| input.text()).transpose()?;
    let expires_delta = has(EXPIRES).then(|| input.signed()).transpose()?;
    let duration_ms = has(DURATION).then(|| input.u32()).transpose()?;
    let context = has(CONTEXT).then(|| input.string()).transpose()?;
    if !input.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(EventRecord {
        ts: head.ts,
        received_delta: head.received_delta,
        type_id: head.type_id,
        outcome: head.outcome,
        client: head.client,
        id,
        token,
        user,
        device_id,
        grant,
        scopes,
        ip,
        user_agent,
        method,
        route,
        status,
        error,
        expires_delta,
        duration_ms,
        context,
    })
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("event record: bad {what}"))
}

struct Out(Vec<u8>);

impl Out {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn signed(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }

    fn string(&mut self, text: &str) {
        self.varint(text.len() as u64);
        self.0.extend_from_slice(text.as_bytes());
    }

    fn text(&mut self, text: &Text) {
        match text {
            Text::Id(id) => self.varint(u64::from(*id) << 1),
            Text::Inline(text) => {
                self.varint(((text.len() as u64) << 1) | 1);
                self.0.extend_from_slice(text.as_bytes());
            }
        }
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("length (truncated)"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte holds the 64th bit only.
            if shift == 63 && bits > 1 {
                return Err(corrupt("varint"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint"))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("number"))
    }

    fn signed(&mut self) -> Result<i64, StoreError> {
        let raw = self.varint()?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    fn len(&mut self, len: u64) -> Result<&'a [u8], StoreError> {
        let len = usize::try_from(len).map_err(|_| corrupt("length"))?;
        self.take(len)
    }

    fn utf8(bytes: &[u8]) -> Result<String, StoreError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("text"))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let len = self.varint()?;
        Self::utf8(self.len(len)?)
    }

    fn text(&mut self) -> Result<Text, StoreError> {
        Ok(match self.text_ref()? {
            TextRef::Id(id) => Text::Id(id),
            TextRef::Inline(text) => Text::Inline(text.to_owned()),
        })
    }

    fn text_ref(&mut self) -> Result<TextRef<'a>, StoreError> {
        let raw = self.varint()?;
        if raw & 1 == 0 {
            let id = u32::try_from(raw >> 1).map_err(|_| corrupt("text id"))?;
            return Ok(TextRef::Id(id));
        }
        let text = std::str::from_utf8(self.len(raw >> 1)?).map_err(|_| corrupt("text"))?;
        Ok(TextRef::Inline(text))
    }

    fn ip(&mut self) -> Result<IpAddr, StoreError> {
        match self.byte()? {
            4 => {
                let mut octets = [0u8; 4];
                octets.copy_from_slice(self.take(4)?);
                Ok(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(self.take(16)?);
                Ok(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            _ => Err(corrupt("address family")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> EventRecord {
        EventRecord {
            ts: 1_764_633_600_123,
            received_delta: -40,
            type_id: 3,
            outcome: 1,
            client: Some(300),
            id: Some("req-1".into()),
            token: Some(1_210_000),
            user: Some(49_999),
            device_id: Some("dev é".into()),
            grant: Some(2),
            scopes: vec![Text::Id(7), Text::Inline("api.write".into())],
            ip: Some(IpAddr::from([203, 0, 113, 9])),
            user_agent: Some(Text::Id(100_000)),
            method: Some(1),
            route: Some(RouteRef::Number(1_150_000)),
            status: Some(401),
            error: Some(Text::Id(12)),
            expires_delta: Some(3_600_000),
            duration_ms: Some(u32::MAX),
            context: Some("{\"n\":1}".into()),
        }
    }

    fn empty() -> EventRecord {
        EventRecord {
            ts: 0,
            received_delta: 0,
            type_id: 0,
            outcome: 0,
            client: None,
            id: None,
            token: None,
            user: None,
            device_id: None,
            grant: None,
            scopes: Vec::new(),
            ip: None,
            user_agent: None,
            method: None,
            route: None,
            status: None,
            error: None,
            expires_delta: None,
            duration_ms: None,
            context: None,
        }
    }

    fn same(a: &EventRecord, b: &EventRecord) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn records_round_trip_with_every_field_or_none() {
        let mut v6 = full();
        v6.ip = Some("2001:db8::1".parse().expect("address"));
        v6.received_delta = i64::MIN;
        v6.expires_delta = Some(i64::MAX);
        v6.token = Some(u64::MAX);
        v6.ts = MAX_TS;
        // A record written before schema 7 holds its route as a text.
        let mut text_route = full();
        text_route.route = Some(RouteRef::Text(Text::Inline("/join/0a1b2c3d4e5f".into())));
        for record in [full(), empty(), v6, text_route] {
            let bytes = encode(&record).expect("encodes");
            let format = match record.route {
                Some(RouteRef::Number(_)) => EVENT_FORMAT_ROUTED,
                _ => EVENT_FORMAT,
            };
            assert_eq!(bytes[0], format);
            assert_eq!(bytes[1..7], record.ts.to_be_bytes()[2..]);
            assert!(same(&decode(&bytes).expect("decodes"), &record));
            let head = decode_head(&bytes).expect("head");
            assert_eq!(
                (head.ts, head.received_delta, head.type_id, head.client),
                (
                    record.ts,
                    record.received_delta,
                    record.type_id,
                    record.client
                )
            );
        }
        // Absent fields cost nothing: the empty record is its fixed part alone.
        assert_eq!(
            encode(&empty()).expect("encodes").len(),
            1 + 6 + 1 + 1 + 1 + 2
        );
    }

    #[test]
    fn times_beyond_48_bits_are_refused() {
        let mut record = empty();
        record.ts = MAX_TS + 1;
        assert!(encode(&record).is_err());
    }

    #[test]
    fn damaged_records_are_corruption_not_panics() {
        let bytes = encode(&full()).expect("encodes");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut other_format = bytes.clone();
        other_format[0] = 1;
        assert!(decode(&other_format).is_err());
        assert!(decode_head(&other_format).is_err());
        // A varint longer than 64 bits.
        let mut long_varint = bytes[..7].to_vec();
        long_varint.extend_from_slice(&[0xff; 10]);
        long_varint.push(0x01);
        assert!(decode_head(&long_varint).is_err());
    }

    proptest::proptest! {
        /// Any record, whichever fields it has and whatever their values, decodes to itself.
        #[test]
        fn any_record_round_trips(
            present in proptest::prelude::any::<u16>(),
            n in proptest::prelude::any::<u64>(),
            d in proptest::prelude::any::<i64>(),
            text in ".{0,12}",
            ts in 0..=MAX_TS,
        ) {
            let has = |bit: u16| present & bit != 0;
            let small = n as u32;
            let record = EventRecord {
                ts,
                received_delta: d,
                type_id: small,
                outcome: n as u8,
                client: has(CLIENT).then_some(small >> 3),
                id: has(ID).then(|| text.clone()),
                token: has(TOKEN).then_some(n),
                user: has(USER).then_some(small.rotate_left(7)),
                device_id: has(DEVICE).then(|| text.clone()),
                grant: has(GRANT).then_some(small >> 20),
                scopes: if has(SCOPES) {
                    vec![Text::Id(small), Text::Inline(text.clone())]
                } else {
                    Vec::new()
                },
                ip: has(IP).then(|| {
                    if n & 1 == 0 {
                        IpAddr::from(small.to_be_bytes())
                    } else {
                        IpAddr::from((u128::from(n) << 64 | u128::from(small)).to_be_bytes())
                    }
                }),
                user_agent: has(AGENT).then(|| Text::Inline(text.clone())),
                method: has(METHOD).then_some(small >> 28),
                route: has(ROUTE).then(|| match n & 6 {
                    0 => RouteRef::Text(Text::Id(u32::MAX - small)),
                    2 => RouteRef::Text(Text::Inline(format!("/r/{text}"))),
                    _ => RouteRef::Number(small.rotate_right(3)),
                }),
                status: has(STATUS).then_some(n as u16),
                error: has(ERROR).then(|| Text::Inline(text.clone())),
                expires_delta: has(EXPIRES).then_some(d.rotate_left(9)),
                duration_ms: has(DURATION).then_some(small ^ 0x5555),
                context: has(CONTEXT).then(|| text.clone()),
            };
            let bytes = encode(&record).expect("encodes");
            proptest::prop_assert!(same(&decode(&bytes).expect("decodes"), &record));
        }
    }
}
