//! RFC 7541 Appendix C test vectors, and the fail-closed behaviour of a table joined mid-way.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn h(name: &str, value: &str) -> Field {
    Field::Header { name: name.as_bytes().to_vec(), value: value.as_bytes().to_vec() }
}

fn block(d: &mut Decoder, s: &str) -> Vec<Field> {
    let mut out = Vec::new();
    d.decode(&hex(s), &mut out).expect("decodes");
    out
}

fn table(d: &Decoder) -> Vec<(String, String)> {
    d.entries
        .iter()
        .map(|e| {
            (
                String::from_utf8_lossy(e.name.as_deref().unwrap_or(b"?")).into_owned(),
                String::from_utf8_lossy(&e.value).into_owned(),
            )
        })
        .collect()
}

#[test]
fn c2_literals() {
    let mut d = Decoder::new();
    assert_eq!(
        block(&mut d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
        [h("custom-key", "custom-header")]
    );
    assert_eq!(d.size, 55);
    let mut d = Decoder::new();
    assert_eq!(block(&mut d, "040c 2f73 616d 706c 652f 7061 7468"), [h(":path", "/sample/path")]);
    assert_eq!(d.size, 0);
    assert_eq!(block(&mut d, "1008 7061 7373 776f 7264 0673 6563 7265 74"), [h("password", "secret")]);
    assert_eq!(d.size, 0);
    assert_eq!(block(&mut d, "82"), [h(":method", "GET")]);
}

#[test]
fn c3_requests_without_huffman() {
    let mut d = Decoder::new();
    assert_eq!(
        block(&mut d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        [h(":method", "GET"), h(":scheme", "http"), h(":path", "/"), h(":authority", "www.example.com")]
    );
    assert_eq!(d.size, 57);
    assert_eq!(
        block(&mut d, "8286 84be 5808 6e6f 2d63 6163 6865"),
        [
            h(":method", "GET"),
            h(":scheme", "http"),
            h(":path", "/"),
            h(":authority", "www.example.com"),
            h("cache-control", "no-cache")
        ]
    );
    assert_eq!(d.size, 110);
    assert_eq!(
        block(&mut d, "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
        [
            h(":method", "GET"),
            h(":scheme", "https"),
            h(":path", "/index.html"),
            h(":authority", "www.example.com"),
            h("custom-key", "custom-value")
        ]
    );
    assert_eq!(d.size, 164);
    assert_eq!(
        table(&d),
        [
            ("custom-key".into(), "custom-value".into()),
            ("cache-control".into(), "no-cache".into()),
            (":authority".into(), "www.example.com".into())
        ]
    );
}

#[test]
fn c4_requests_with_huffman() {
    let mut d = Decoder::new();
    assert_eq!(
        block(&mut d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
        [h(":method", "GET"), h(":scheme", "http"), h(":path", "/"), h(":authority", "www.example.com")]
    );
    assert_eq!(d.size, 57);
    assert_eq!(block(&mut d, "8286 84be 5886 a8eb 1064 9cbf")[4], h("cache-control", "no-cache"));
    assert_eq!(d.size, 110);
    assert_eq!(
        block(&mut d, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")[4],
        h("custom-key", "custom-value")
    );
    assert_eq!(d.size, 164);
}

/// C.5 and C.6 use a 256-byte table: a size update first says so.
fn responses(c1: &str, c2: &str, c3: &str) {
    let mut d = Decoder::new();
    let mut first = String::from("3fe1 01 ");
    first.push_str(c1);
    assert_eq!(
        block(&mut d, &first),
        [
            h(":status", "302"),
            h("cache-control", "private"),
            h("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            h("location", "https://www.example.com")
        ]
    );
    assert_eq!(d.max_size, 256);
    assert_eq!(d.size, 222);
    assert_eq!(
        block(&mut d, c2),
        [
            h(":status", "307"),
            h("cache-control", "private"),
            h("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            h("location", "https://www.example.com")
        ]
    );
    assert_eq!(d.size, 222);
    assert_eq!(
        block(&mut d, c3),
        [
            h(":status", "200"),
            h("cache-control", "private"),
            h("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            h("location", "https://www.example.com"),
            h("content-encoding", "gzip"),
            h("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
        ]
    );
    assert_eq!(d.size, 215);
    assert_eq!(
        table(&d),
        [
            ("set-cookie".into(), "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1".into()),
            ("content-encoding".into(), "gzip".into()),
            ("date".into(), "Mon, 21 Oct 2013 20:13:22 GMT".into())
        ]
    );
}

#[test]
fn c5_responses_without_huffman() {
    responses(
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d \
         546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f \
         6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b \
         2076 6572 7369 6f6e 3d31",
    );
}

#[test]
fn c6_responses_with_huffman() {
    responses(
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 \
         8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 \
         dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    );
}

#[test]
fn mid_stream_never_guesses_and_keeps_what_it_saw() {
    let mut d = Decoder::mid_stream();
    assert!(!d.is_complete());
    // The encoder refers to entry 62, inserted before the decoder joined: unresolved.
    let mut out = Vec::new();
    d.decode(&hex("82be"), &mut out).expect("well formed");
    assert_eq!(out, [h(":method", "GET"), Field::Unresolved]);
    // A new insertion is entry 62 from now on, whatever the table held.
    out.clear();
    d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"), &mut out).expect("ok");
    out.clear();
    d.decode(&hex("be bf"), &mut out).expect("ok");
    assert_eq!(out, [h("custom-key", "custom-value"), Field::Unresolved]);
    // A literal naming an unknown entry still inserts: the entry after it shifts.
    out.clear();
    d.decode(&hex("7f00 0178"), &mut out).expect("ok"); // name index 63 (unknown), value "x"
    assert_eq!(out, [Field::Unresolved]);
    out.clear();
    d.decode(&hex("bebf"), &mut out).expect("ok");
    assert_eq!(out, [Field::Unresolved, h("custom-key", "custom-value")]);
}

#[test]
fn a_lost_block_forgets_every_index() {
    let mut d = Decoder::new();
    block(&mut d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
    let mut out = Vec::new();
    // A block cut after its first field: what was captured decodes, then the table is lost.
    d.decode_prefix(&hex("be 400a 6375 7374"), &mut out);
    assert_eq!(out, [h(":authority", "www.example.com")]);
    assert!(!d.is_complete());
    out.clear();
    d.decode(&hex("be"), &mut out).expect("ok");
    assert_eq!(out, [Field::Unresolved]);
}

#[test]
fn malformed_blocks_fail_and_lose_the_table() {
    for bad in ["80", "ff80 8080 8080 80", "4085 ffff ffff ff00", "41"] {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&hex(bad), &mut out), Err(BadBlock), "{bad}");
        assert!(!d.is_complete());
    }
}

#[test]
fn size_update_evicts() {
    let mut d = Decoder::new();
    block(&mut d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(d.size, 55);
    block(&mut d, "20");
    assert_eq!(d.size, 0);
    assert!(d.entries.is_empty());
}
