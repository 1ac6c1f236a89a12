//! The few fields of an X.509 certificate the proxy shows or uses: when
//! it expires (metrics, the status page), its serial number (logs), its
//! subject's common name (logs, mutual TLS users). A small DER walk over
//! the TBSCertificate, no more: rustls (webpki) does every check that
//! matters for security; this only reads what it already accepted, or
//! what the proxy's own configuration names.

/// What the proxy knows of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Seconds since the Unix epoch at `notAfter`.
    pub not_after: i64,
    /// The serial number, hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
}

/// A DER element: its tag and contents.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
}

/// Reads one element off the front of `input`; returns it and the rest.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((Element { tag, contents }, rest))
}

/// Reads an element with the expected tag.
fn expect(input: &[u8], tag: u8) -> Option<(Element<'_>, &[u8])> {
    let (found, rest) = element(input)?;
    (found.tag == tag).then_some((found, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// Reads a DER certificate; None when it is not one.
pub fn summarize(der: &[u8]) -> Option<CertSummary> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate.contents, SEQUENCE)?;
    let mut fields = tbs.contents;
    if let Some((version, rest)) = element(fields) {
        if version.tag == VERSION {
            fields = rest;
        }
    }
    let (serial, fields) = expect(fields, INTEGER)?;
    let (_signature, fields) = expect(fields, SEQUENCE)?;
    let (_issuer, fields) = expect(fields, SEQUENCE)?;
    let (validity, fields) = expect(fields, SEQUENCE)?;
    let (subject, _) = expect(fields, SEQUENCE)?;
    let (_not_before, rest) = element(validity.contents)?;
    let (not_after, _) = element(rest)?;
    Some(CertSummary {
        not_after: time(&not_after)?,
        serial: hex(serial.contents),
        common_name: common_name(subject.contents),
    })
}

/// The serial's bytes as openssl prints them: upper-case hex, without
/// DER's leading zero byte (kept when the number is zero).
fn hex(bytes: &[u8]) -> String {
    let trimmed = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    trimmed.iter().map(|b| format!("{b:02X}")).collect()
}

/// The last common name among the subject's attributes (the most
/// specific, as OpenSSL's `X509_NAME_get_index_by_NID(.., -1)` users do).
fn common_name(mut rdns: &[u8]) -> Option<String> {
    let mut found = None;
    while let Some((set, rest)) = expect(rdns, SET) {
        rdns = rest;
        let mut attributes = set.contents;
        while let Some((attribute, rest)) = expect(attributes, SEQUENCE) {
            attributes = rest;
            let Some((oid, value)) = expect(attribute.contents, OID) else {
                continue;
            };
            if oid.contents == COMMON_NAME {
                if let Some((value, _)) = element(value) {
                    found = Some(String::from_utf8_lossy(value.contents).into_owned());
                }
            }
        }
    }
    found
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// Unix seconds.
fn time(element: &Element<'_>) -> Option<i64> {
    let text = std::str::from_utf8(element.contents).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match element.tag {
        UTC_TIME => {
            let (yy, rest) = text.split_at_checked(2)?;
            let yy: i64 = yy.parse().ok()?;
            // RFC 5280: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, rest)
        }
        GENERALIZED_TIME => {
            let (yyyy, rest) = text.split_at_checked(4)?;
            (yyyy.parse().ok()?, rest)
        }
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |at: usize| -> Option<i64> { rest.get(at..at + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Unix seconds as `2027-03-15 12:34:56 UTC`.
pub fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_len(len: usize) -> Vec<u8> {
        if len < 0x80 {
            vec![len as u8]
        } else if len < 0x100 {
            vec![0x81, len as u8]
        } else {
            vec![0x82, (len >> 8) as u8, len as u8]
        }
    }

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(der_len(contents.len()));
        out.extend_from_slice(contents);
        out
    }

    fn name(cn: &str) -> Vec<u8> {
        let mut attribute = tlv(OID, COMMON_NAME);
        attribute.extend(tlv(0x0c, cn.as_bytes()));
        let org = [tlv(OID, &[0x55, 0x04, 0x0a]), tlv(0x0c, b"shardgate")].concat();
        let rdns = [
            tlv(SET, &tlv(SEQUENCE, &org)),
            tlv(SET, &tlv(SEQUENCE, &attribute)),
        ]
        .concat();
        tlv(SEQUENCE, &rdns)
    }

    fn certificate(serial: &[u8], not_after: (u8, &str), cn: &str) -> Vec<u8> {
        let validity = [
            tlv(UTC_TIME, b"250101000000Z"),
            tlv(not_after.0, not_after.1.as_bytes()),
        ]
        .concat();
        let tbs = [
            tlv(VERSION, &tlv(INTEGER, &[2])),
            tlv(INTEGER, serial),
            tlv(
                SEQUENCE,
                &tlv(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
            ),
            name("issuer"),
            tlv(SEQUENCE, &validity),
            name(cn),
            tlv(SEQUENCE, &[0u8; 200]),
        ]
        .concat();
        let body = [
            tlv(SEQUENCE, &tbs),
            tlv(SEQUENCE, &tlv(OID, &[0x2a])),
            tlv(0x03, &[0, 1, 2]),
        ]
        .concat();
        tlv(SEQUENCE, &body)
    }

    #[test]
    fn reads_expiry_serial_and_common_name() {
        let der = certificate(&[0x00, 0x9f, 0x01], (UTC_TIME, "270315123456Z"), "app");
        let summary = summarize(&der).expect("a certificate");
        // date -u -d 2027-03-15T12:34:56Z +%s
        assert_eq!(summary.not_after, 1_805_114_096);
        assert_eq!(summary.serial, "9F01");
        assert_eq!(summary.common_name.as_deref(), Some("app"));
    }

    #[test]
    fn reads_generalized_time_and_the_utc_time_century_rule() {
        let der = certificate(&[1], (GENERALIZED_TIME, "20500101000000Z"), "x");
        assert_eq!(summarize(&der).expect("cert").not_after, 2_524_608_000);
        let der = certificate(&[1], (UTC_TIME, "991231235959Z"), "x");
        assert_eq!(summarize(&der).expect("cert").not_after, 946_684_799);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(utc(1_805_114_096), "2027-03-15 12:34:56 UTC");
        assert_eq!(utc(946_684_799), "1999-12-31 23:59:59 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn truncated_or_foreign_input_is_none_never_a_panic() {
        let der = certificate(&[7], (UTC_TIME, "300101000000Z"), "cn");
        for len in 0..der.len() {
            assert_eq!(summarize(&der[..len]), None, "prefix of {len} bytes");
        }
        assert_eq!(summarize(b"-----BEGIN CERTIFICATE-----"), None);
        let bad_time = certificate(&[7], (UTC_TIME, "30013100000Z"), "cn");
        assert_eq!(summarize(&bad_time), None);
    }
}
