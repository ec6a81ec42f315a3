-- The warehouse table that example_dags/cancel_from_warehouse.py reads: one row per CRM meeting,
-- with the scheduling key its Meeting Agent was scheduled under. `make demo` and the tests load
-- this into a SQLite file; in real life the table is your warehouse's (Postgres, Snowflake, ...).
CREATE TABLE crm_meetings (
    scheduling_key VARCHAR(255) NOT NULL PRIMARY KEY,
    meeting VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL  -- 'confirmed' or 'called_off'
);

INSERT INTO crm_meetings (scheduling_key, meeting, status) VALUES
    ('crm-deal-2001-kickoff', 'Kick-off with Acme', 'called_off'),
    ('crm-deal-2002-demo', 'Demo for Globex', 'confirmed'),
    ('crm-deal-2003-review', 'Quarterly review with Initech', 'called_off'),
    ('crm-deal-2004-intro', 'Intro call with Umbrella (its agent was never scheduled)', 'called_off'),
    ('crm-deal-2005-renewal', 'Renewal with Hooli', 'called_off'),
    ('crm-deal-2006-training', 'Training for Stark', 'confirmed');
