-- The layers of a build's image (JSON: digest, size, description, components), so the build page can show
-- them and which of them a client of another build downloads.
ALTER TABLE builds ADD COLUMN layers TEXT;
