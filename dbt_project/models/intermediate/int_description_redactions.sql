-- Every distinct free-text value the de-identified marts carry, with its two-stage redaction
-- (patterns, then the token allowlist). Redacting distinct values keeps the cost independent
-- of the number of series. Identified: it holds the raw text.
with texts as (
    select study_description as raw_text from {{ ref('image_occurrence') }}
    union distinct
    select series_description from {{ ref('image_occurrence') }}
    union distinct
    select protocol_name from {{ ref('image_occurrence') }} where protocol_name is not null
)

{{ deid_redaction_table('texts', 'raw_text') }}
