//! XML character and entity references in rpm-md texts: quick-xml hands `&amp;` and `&#38;` over apart
//! from the text around them, and each reader puts them back in the same way.

use quick_xml::events::BytesRef;

/// Room for one character in UTF-8.
pub type CharacterBuffer = [u8; 4];

/// The text a reference stands for: a character reference (`&#38;`, `&#x26;`) or one of XML's five
/// predefined entities. Any other entity is an error naming it (rpm-md declares none).
pub fn resolve_reference<'buffer>(
    reference: &BytesRef<'_>,
    buffer: &'buffer mut CharacterBuffer,
) -> Result<&'buffer str, String> {
    if let Some(character) = reference.resolve_char_ref().map_err(|error| error.to_string())? {
        return Ok(character.encode_utf8(buffer));
    }
    let name = reference.decode().map_err(|error| error.to_string())?;
    quick_xml::escape::resolve_predefined_entity(&name).ok_or_else(|| format!("unknown entity &{name};"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_to_their_text() {
        let cases =
            [("amp", Ok("&")), ("lt", Ok("<")), ("#38", Ok("&")), ("#x263A", Ok("☺")), ("nbsp", Err(()))];
        for (name, expected) in cases {
            let reference = BytesRef::new(name);
            let mut buffer = CharacterBuffer::default();
            let resolved = resolve_reference(&reference, &mut buffer);
            match expected {
                Ok(text) => assert_eq!(resolved.as_deref(), Ok(text), "&{name};"),
                Err(()) => assert_eq!(resolved, Err(format!("unknown entity &{name};"))),
            }
        }
    }
}
