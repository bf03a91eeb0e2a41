--
-- PostgreSQL database dump
--

\restrict H1U8cDtxgdgY2P1fKHADkKPurQ9alOZjLW9RO0axvlwOdLYe7Rz0kbK2htbdZsR

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: fixture0004; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA fixture0004;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: checkpoints; Type: TABLE; Schema: fixture0004; Owner: -
--

CREATE TABLE fixture0004.checkpoints (
    run_id text NOT NULL COLLATE pg_catalog."C",
    version bigint NOT NULL,
    body bytea NOT NULL,
    xid bigint DEFAULT ((pg_current_xact_id())::text)::bigint NOT NULL
);


--
-- Name: corrupt_0001; Type: TABLE; Schema: fixture0004; Owner: -
--

CREATE TABLE fixture0004.corrupt_0001 (
    id text NOT NULL,
    body bytea NOT NULL
);


--
-- Name: runs; Type: TABLE; Schema: fixture0004; Owner: -
--

CREATE TABLE fixture0004.runs (
    id text NOT NULL COLLATE pg_catalog."C",
    workflow text NOT NULL,
    fingerprint text NOT NULL,
    status text NOT NULL,
    version bigint NOT NULL,
    owner text DEFAULT ''::text NOT NULL,
    lease_until bigint DEFAULT 0 NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    finished_at bigint DEFAULT 0 NOT NULL,
    error text DEFAULT ''::text NOT NULL,
    input bytea NOT NULL,
    initial_data bytea NOT NULL,
    nodes integer NOT NULL,
    done integer NOT NULL,
    attempts integer NOT NULL,
    failures integer NOT NULL,
    interrupted integer NOT NULL,
    at_node text DEFAULT ''::text NOT NULL
)
WITH (fillfactor='70');


--
-- Name: schema_migrations; Type: TABLE; Schema: fixture0004; Owner: -
--

CREATE TABLE fixture0004.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: trace_events; Type: TABLE; Schema: fixture0004; Owner: -
--

CREATE TABLE fixture0004.trace_events (
    seq bigint NOT NULL,
    run_id text NOT NULL COLLATE pg_catalog."C",
    created_at bigint NOT NULL,
    type text NOT NULL,
    line text NOT NULL
);


--
-- Name: trace_events_seq_seq; Type: SEQUENCE; Schema: fixture0004; Owner: -
--

ALTER TABLE fixture0004.trace_events ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME fixture0004.trace_events_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Data for Name: checkpoints; Type: TABLE DATA; Schema: fixture0004; Owner: -
--

INSERT INTO fixture0004.checkpoints VALUES ('run-completed', 1, '\x010400040005636865636b04737465700772756e6e696e67a0e89eeca6fadbed3100a0e89eeca6fadbed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 728);
INSERT INTO fixture0004.checkpoints VALUES ('run-completed', 2, '\x010400020005636865636b047374657009636f6d706c65746564a0e89eeca6fadbed3188868cf4a6fadbed3100040101b8de86f4a6fadbed31dca705000000407b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d636f6d706c65746564225d7d010663686172676504737465700772756e6e696e6788868cf4a6fadbed310088868cf4a6fadbed310000', 729);
INSERT INTO fixture0004.checkpoints VALUES ('run-completed', 3, '\x01040001010663686172676504737465700772756e6e696e6788868cf4a6fadbed31009ce6ddf6a6fadbed31000101f0c9dbf6a6fadbed31c8fa010f676174657761792074696d656f75740000', 730);
INSERT INTO fixture0004.checkpoints VALUES ('run-completed', 4, '\x010400020106636861726765047374657009636f6d706c6574656488868cf4a6fadbed31ce89ccf7a6fadbed31000c01029eb0bef7a6fadbed31ccd90d00000011001c6368617267654964223a2263682d6f2d636f6d706c65746564222c2202047368697006636f6d6d69740772756e6e696e67ce89ccf7a6fadbed3100ce89ccf7a6fadbed310000', 731);
INSERT INTO fixture0004.checkpoints VALUES ('run-completed', 5, '\x0104000102047368697006636f6d6d697409636f6d706c65746564ce89ccf7a6fadbed318edabff8a6fadbed31000c01019091bef8a6fadbed318ec901000000360403747275', 732);
INSERT INTO fixture0004.checkpoints VALUES ('run-completed', 6, '\x0104000103066e6f7469667904737465700772756e6e696e67aed493f9a6fadbed3100aed493f9a6fadbed310000', 733);
INSERT INTO fixture0004.checkpoints VALUES ('run-completed', 7, '\x0104000103066e6f74696679047374657009636f6d706c65746564aed493f9a6fadbed31ae9b93faa6fadbed31000c010186bd8ffaa6fadbed31c6de0300000059000b2c226e6f74696669656422', 734);
INSERT INTO fixture0004.checkpoints VALUES ('run-failed', 1, '\x010400040005636865636b04737465700772756e6e696e679aa1bdfba6fadbed31009aa1bdfba6fadbed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 735);
INSERT INTO fixture0004.checkpoints VALUES ('run-failed', 2, '\x010400020005636865636b047374657009636f6d706c657465649aa1bdfba6fadbed31c8b6e3fca6fadbed31000401019ae3e1fca6fadbed31bad3010000003d7b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d6661696c6564225d7d010663686172676504737465700772756e6e696e67c8b6e3fca6fadbed3100c8b6e3fca6fadbed310000', 736);
INSERT INTO fixture0004.checkpoints VALUES ('run-failed', 3, '\x01040001010663686172676504737465700772756e6e696e67c8b6e3fca6fadbed3100e09ea8fea6fadbed31000101b4c5a6fea6fadbed31e2bd010f676174657761792074696d656f75740000', 737);
INSERT INTO fixture0004.checkpoints VALUES ('run-failed', 4, '\x0104000101066368617267650473746570066661696c6564c8b6e3fca6fadbed31b4938880a7fadbed3100000102d48adaffa6fadbed31b0eb210d63617264206465636c696e65640000', 738);
INSERT INTO fixture0004.checkpoints VALUES ('run-cancelled', 1, '\x010400040005636865636b04737465700772756e6e696e67ce928484a7fadbed3100ce928484a7fadbed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 739);
INSERT INTO fixture0004.checkpoints VALUES ('run-cancelled', 2, '\x010400020005636865636b047374657009636f6d706c65746564ce928484a7fadbed31f8da968fa7fadbed3100040101befafc8ea7fadbed31c2e019000000407b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d63616e63656c6c6564225d7d010663686172676504737465700772756e6e696e67f8da968fa7fadbed3100f8da968fa7fadbed310000', 740);
INSERT INTO fixture0004.checkpoints VALUES ('run-cancelled', 3, '\x01040001010663686172676504737465700772756e6e696e67f8da968fa7fadbed3100f29ac293a7fadbed31000101dad9c093a7fadbed3188a7010f676174657761792074696d656f75740000', 741);
INSERT INTO fixture0004.checkpoints VALUES ('run-cancelled', 4, '\x01040001010663686172676504737465700770656e64696e67f8da968fa7fadbed310000000102e6d7c096a7fadbed31be8fbf0b20696e7465727275707465643a20666c75783a2072756e2063616e63656c6c65640001', 742);
INSERT INTO fixture0004.checkpoints VALUES ('run-unfinished', 1, '\x010400040005636865636b04737465700772756e6e696e67e0d388a4a7fadbed3100e0d388a4a7fadbed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 743);
INSERT INTO fixture0004.checkpoints VALUES ('run-unfinished', 2, '\x010400020005636865636b047374657009636f6d706c65746564e0d388a4a7fadbed31e09ca2a5a7fadbed3100040101d297a0a5a7fadbed319e8502000000417b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d756e66696e6973686564225d7d010663686172676504737465700772756e6e696e67e09ca2a5a7fadbed3100e09ca2a5a7fadbed310000', 744);
INSERT INTO fixture0004.checkpoints VALUES ('run-unfinished', 3, '\x01040001010663686172676504737465700772756e6e696e67e09ca2a5a7fadbed31009eeab8a6a7fadbed3100010180c1b7a6a7fadbed318c8f010f676174657761792074696d656f75740000', 745);


--
-- Data for Name: corrupt_0001; Type: TABLE DATA; Schema: fixture0004; Owner: -
--



--
-- Data for Name: runs; Type: TABLE DATA; Schema: fixture0004; Owner: -
--

INSERT INTO fixture0004.runs VALUES ('run-completed', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'completed', 7, '', 0, 1796294038664753173, 1796294038679348951, 1796294038679348951, '', '\x7b226f72646572223a226f2d636f6d706c65746564222c2263656e7473223a313235307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 4, 5, 1, 0, 'notify');
INSERT INTO fixture0004.runs VALUES ('run-failed', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'failed', 4, '', 0, 1796294038680734358, 1796294038685562193, 1796294038685561832, 'flux: workflow "fixture-order" run run-failed: step "charge" failed on attempt 2: card declined', '\x7b226f72646572223a226f2d6661696c6564222c2263656e7473223a313235307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 1, 3, 2, 0, 'charge');
INSERT INTO fixture0004.runs VALUES ('run-cancelled', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'cancelled', 4, '', 0, 1796294038689691474, 1796294038721142447, 1796294038721142043, 'flux: run cancelled', '\x7b226f72646572223a226f2d63616e63656c6c6564222c2263656e7473223a307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 1, 3, 1, 1, 'charge');
INSERT INTO fixture0004.runs VALUES ('run-unfinished', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'running', 3, 'fixture#871b3a83', 1796294039725915000, 1796294038723294118, 1796294038725794447, 0, '', '\x7b226f72646572223a226f2d756e66696e6973686564222c2263656e7473223a3939307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 1, 2, 1, 0, 'charge');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: fixture0004; Owner: -
--

INSERT INTO fixture0004.schema_migrations VALUES (1, '0001_runs', '2026-12-03 10:33:58.610625+00');
INSERT INTO fixture0004.schema_migrations VALUES (2, '0002_log', '2026-12-03 10:33:58.610625+00');
INSERT INTO fixture0004.schema_migrations VALUES (3, '0003_unfinished', '2026-12-03 10:33:58.610625+00');
INSERT INTO fixture0004.schema_migrations VALUES (4, '0004_trace', '2026-12-03 10:33:58.610625+00');


--
-- Data for Name: trace_events; Type: TABLE DATA; Schema: fixture0004; Owner: -
--



--
-- Name: trace_events_seq_seq; Type: SEQUENCE SET; Schema: fixture0004; Owner: -
--

SELECT pg_catalog.setval('fixture0004.trace_events_seq_seq', 1, false);


--
-- Name: checkpoints checkpoints_pkey; Type: CONSTRAINT; Schema: fixture0004; Owner: -
--

ALTER TABLE ONLY fixture0004.checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (run_id, version);


--
-- Name: corrupt_0001 corrupt_0001_pkey; Type: CONSTRAINT; Schema: fixture0004; Owner: -
--

ALTER TABLE ONLY fixture0004.corrupt_0001
    ADD CONSTRAINT corrupt_0001_pkey PRIMARY KEY (id);


--
-- Name: runs runs_pkey1; Type: CONSTRAINT; Schema: fixture0004; Owner: -
--

ALTER TABLE ONLY fixture0004.runs
    ADD CONSTRAINT runs_pkey1 PRIMARY KEY (id) INCLUDE (created_at);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: fixture0004; Owner: -
--

ALTER TABLE ONLY fixture0004.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: trace_events trace_events_pkey; Type: CONSTRAINT; Schema: fixture0004; Owner: -
--

ALTER TABLE ONLY fixture0004.trace_events
    ADD CONSTRAINT trace_events_pkey PRIMARY KEY (seq);


--
-- Name: checkpoints_xid; Type: INDEX; Schema: fixture0004; Owner: -
--

CREATE INDEX checkpoints_xid ON fixture0004.checkpoints USING brin (xid);


--
-- Name: runs_error_words; Type: INDEX; Schema: fixture0004; Owner: -
--

CREATE INDEX runs_error_words ON fixture0004.runs USING gin (to_tsvector('simple'::regconfig, error)) WHERE (error <> ''::text);


--
-- Name: runs_newest; Type: INDEX; Schema: fixture0004; Owner: -
--

CREATE INDEX runs_newest ON fixture0004.runs USING btree (created_at DESC, id DESC);


--
-- Name: runs_stopped; Type: INDEX; Schema: fixture0004; Owner: -
--

CREATE INDEX runs_stopped ON fixture0004.runs USING btree (created_at DESC, id DESC) WHERE (status = ANY (ARRAY['failed'::text, 'cancelled'::text]));


--
-- Name: runs_unfinished; Type: INDEX; Schema: fixture0004; Owner: -
--

CREATE INDEX runs_unfinished ON fixture0004.runs USING btree (((created_at + 0)), id) WHERE (status = ANY (ARRAY['pending'::text, 'running'::text]));


--
-- Name: runs_workflow_newest; Type: INDEX; Schema: fixture0004; Owner: -
--

CREATE INDEX runs_workflow_newest ON fixture0004.runs USING btree (workflow, created_at DESC, id DESC);


--
-- Name: trace_events_run; Type: INDEX; Schema: fixture0004; Owner: -
--

CREATE INDEX trace_events_run ON fixture0004.trace_events USING btree (run_id, seq);


--
-- PostgreSQL database dump complete
--

\unrestrict H1U8cDtxgdgY2P1fKHADkKPurQ9alOZjLW9RO0axvlwOdLYe7Rz0kbK2htbdZsR

