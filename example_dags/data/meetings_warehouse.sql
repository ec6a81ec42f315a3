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

-- The integrated meetings (Meeting Agents on calendar events) that the second DAG of
-- cancel_from_warehouse.py reads: one row per event, with the Cronofy account whose calendar holds
-- it. Each account has its own Airflow connection, cronofy_<account>.
CREATE TABLE integrated_meetings (
    account VARCHAR(64) NOT NULL,
    calendar_id VARCHAR(255) NOT NULL,
    event_id VARCHAR(255) NOT NULL,
    meeting VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL,  -- 'confirmed' or 'called_off'
    PRIMARY KEY (calendar_id, event_id)
);

INSERT INTO integrated_meetings (account, calendar_id, event_id, meeting, status) VALUES
    ('acme', 'cal_acme_sales', 'evt-3001', 'Pipeline review', 'called_off'),
    ('acme', 'cal_acme_sales', 'evt-3002', 'Forecast call', 'confirmed'),
    ('acme', 'cal_acme_support', 'evt-3003', 'Escalation sync', 'called_off'),
    ('acme', 'cal_acme_support', 'evt-3004', 'Support retro', 'called_off'),
    ('globex', 'cal_globex_main', 'evt-4001', 'Board prep', 'called_off'),
    ('globex', 'cal_globex_main', 'evt-4002', 'All hands', 'confirmed'),
    ('globex', 'cal_globex_main', 'evt-4005', 'Vendor demo', 'called_off'),
    ('globex', 'cal_globex_shared', 'evt-4003', 'Partner call (calendar no longer shared)', 'called_off'),
    ('globex', 'cal_globex_shared', 'evt-4004', 'Partner follow-up (calendar no longer shared)', 'called_off');
