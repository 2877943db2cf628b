-- New members are counted by person (the registration's phone hash), not by
-- canonical id: a person's canonical id changes when an alias registered
-- earlier arrives late, so a count by canonical id depended on arrival
-- order. Rows written before this migration get their canonical id as key.
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: the migration runner
-- skips an ADD COLUMN whose column is already there.

ALTER TABLE member_registrations ADD COLUMN person_key String DEFAULT canonical_id AFTER canonical_id;
