-- The warehouse tables that example_dags/sync_meeting_agents.py reads. `make demo` and the tests
-- load this into a SQLite file (the times are relative to when it is loaded, SQLite's strftime);
-- in real life `meetings` is your warehouse's table (Postgres, Snowflake, ...).
--
-- meetings: one row per CRM meeting, as the CRM loader writes it; the sync DAG only reads it.
-- join_time is ISO 8601 in UTC (a TIMESTAMP WITH TIME ZONE column does as well).
CREATE TABLE meetings (
    meeting_id VARCHAR(64) NOT NULL PRIMARY KEY,
    scheduling_key VARCHAR(255) NOT NULL UNIQUE,
    title VARCHAR(255) NOT NULL,
    organiser VARCHAR(255) NOT NULL,
    join_url VARCHAR(1000) NOT NULL,
    join_time VARCHAR(32) NOT NULL,
    status VARCHAR(32) NOT NULL  -- 'confirmed' or 'called_off'
);

INSERT INTO meetings (meeting_id, scheduling_key, title, organiser, join_url, join_time, status) VALUES
    ('5001', 'crm-meeting-5001', 'Kick-off with Acme', 'ana@example.com',
     'https://meet.example.com/5001?pwd=acme5001', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+1 day'), 'confirmed'),
    ('5002', 'crm-meeting-5002', 'Demo for Globex', 'ben@example.com',
     'https://meet.example.com/5002?pwd=globex5002', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+2 days'), 'confirmed'),
    ('5003', 'crm-meeting-5003', 'Training for Stark (its agent is scheduled)', 'ana@example.com',
     'https://meet.example.com/5003?pwd=stark5003', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+3 days'), 'confirmed'),
    ('5004', 'crm-meeting-5004', 'Review with Initech', 'cy@example.com',
     'https://meet.example.com/5004?pwd=initech5004', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+1 day'), 'called_off'),
    ('5005', 'crm-meeting-5005', 'Renewal with Hooli', 'ben@example.com',
     'https://meet.example.com/5005?pwd=hooli5005', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+4 days'), 'called_off'),
    ('5006', 'crm-meeting-5006', 'Intro to Umbrella (its agent was cancelled in the dashboard)', 'cy@example.com',
     'https://meet.example.com/5006?pwd=umbrella5006', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+2 days'), 'called_off'),
    ('5007', 'crm-meeting-5007', 'Lunch with Wayne (never had an agent)', 'ana@example.com',
     'https://meet.example.com/5007?pwd=wayne5007', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+2 days'), 'called_off'),
    ('5008', 'crm-meeting-5008', 'Retro with Soylent (held yesterday)', 'ben@example.com',
     'https://meet.example.com/5008?pwd=soylent5008', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-1 day'), 'confirmed'),
    ('5009', 'crm-meeting-5009', 'Pricing call with Tyrell (moved to a later day)', 'cy@example.com',
     'https://meet.example.com/5009?pwd=tyrell5009', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+5 days'), 'confirmed');

-- cronofy_meeting_agents: the sync DAG's own state, one row per scheduling key that has (or may
-- have) an agent, with the join_url and join_time it was scheduled for. The DAG creates it when
-- missing; these rows are what earlier nights left: 5003, 5004 and 5005 scheduled as they stand,
-- 5006 too (its agent has since been cancelled in Cronofy's dashboard, so Cronofy answers 404),
-- 5009 for the day before it was moved.
CREATE TABLE cronofy_meeting_agents (
    scheduling_key VARCHAR(255) NOT NULL PRIMARY KEY,
    state VARCHAR(16) NOT NULL,
    join_url VARCHAR(1000) NOT NULL,
    join_time VARCHAR(32) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

INSERT INTO cronofy_meeting_agents (scheduling_key, state, join_url, join_time, run_id, updated_at)
SELECT scheduling_key, 'scheduled', join_url, join_time, 'seed', strftime('%Y-%m-%d %H:%M:%S', 'now', '-1 day')
FROM meetings WHERE meeting_id IN ('5003', '5004', '5005', '5006');

INSERT INTO cronofy_meeting_agents (scheduling_key, state, join_url, join_time, run_id, updated_at)
SELECT scheduling_key, 'scheduled', join_url, strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+4 days'), 'seed',
       strftime('%Y-%m-%d %H:%M:%S', 'now', '-1 day')
FROM meetings WHERE meeting_id = '5009';
