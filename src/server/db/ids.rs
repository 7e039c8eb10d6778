//! Ids as stored: uuids in their hyphenated text form, in `TEXT` columns. Queries bind and read
//! them as [`TextUuid`], so that form is written down here alone (sqlx's own `uuid` support
//! stores SQLite uuids as blobs).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

/// A uuid column, or a uuid bound where one is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TextUuid(pub(super) Uuid);

impl Type<Sqlite> for TextUuid {
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <str as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for TextUuid {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for TextUuid {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        parse(<&str as Decode<'r, Sqlite>>::decode(value)?)
    }
}

/// The same text form on Postgres (`TEXT` columns there too, so a copied database's ids are
/// the same strings).
impl Type<Postgres> for TextUuid {
    fn type_info() -> PgTypeInfo {
        <str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <str as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for TextUuid {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Postgres>>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for TextUuid {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        parse(<&str as Decode<'r, Postgres>>::decode(value)?)
    }
}

fn parse(text: &str) -> Result<TextUuid, BoxDynError> {
    // The stored text in the error, as the log needs it to find the row.
    Uuid::parse_str(text)
        .map(TextUuid)
        .map_err(|_| format!("not a uuid: {text}").into())
}
