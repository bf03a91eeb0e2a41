--
-- PostgreSQL database dump
--

\restrict 8G9Le4rRQEuWwZCrIt4e9MCsmmjUd7Z1tFmk6yd6BqL5HZPHtKLwL1X5XtPivU3

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
-- Name: fixture0002; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA fixture0002;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: checkpoints; Type: TABLE; Schema: fixture0002; Owner: -
--

CREATE TABLE fixture0002.checkpoints (
    run_id text NOT NULL COLLATE pg_catalog."C",
    version bigint NOT NULL,
    body bytea NOT NULL,
    xid bigint DEFAULT ((pg_current_xact_id())::text)::bigint NOT NULL
);


--
-- Name: corrupt_0001; Type: TABLE; Schema: fixture0002; Owner: -
--

CREATE TABLE fixture0002.corrupt_0001 (
    id text NOT NULL,
    body bytea NOT NULL
);


--
-- Name: runs; Type: TABLE; Schema: fixture0002; Owner: -
--

CREATE TABLE fixture0002.runs (
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
-- Name: schema_migrations; Type: TABLE; Schema: fixture0002; Owner: -
--

CREATE TABLE fixture0002.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Data for Name: checkpoints; Type: TABLE DATA; Schema: fixture0002; Owner: -
--

INSERT INTO fixture0002.checkpoints VALUES ('run-completed', 1, '\x010400040005636865636b04737465700772756e6e696e67bee68fe4fb9ac2ed3100bee68fe4fb9ac2ed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 1235531);
INSERT INTO fixture0002.checkpoints VALUES ('run-completed', 2, '\x010400020005636865636b047374657009636f6d706c65746564bee68fe4fb9ac2ed31e0e19ee7fb9ac2ed3100040101dea19ae7fb9ac2ed3182c004000000407b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d636f6d706c65746564225d7d010663686172676504737465700772756e6e696e67e0e19ee7fb9ac2ed3100e0e19ee7fb9ac2ed310000', 1235532);
INSERT INTO fixture0002.checkpoints VALUES ('run-completed', 3, '\x01040001010663686172676504737465700772756e6e696e67e0e19ee7fb9ac2ed31009288abe9fb9ac2ed31000101d2b3a9e9fb9ac2ed31e4bb010f676174657761792074696d656f75740000', 1235533);
INSERT INTO fixture0002.checkpoints VALUES ('run-completed', 4, '\x010400020106636861726765047374657009636f6d706c65746564e0e19ee7fb9ac2ed31c691fbe9fb9ac2ed31000c01029283f8e9fb9ac2ed31b48e0300000011001c6368617267654964223a2263682d6f2d636f6d706c65746564222c2202047368697006636f6d6d69740772756e6e696e67c691fbe9fb9ac2ed3100c691fbe9fb9ac2ed310000', 1235534);
INSERT INTO fixture0002.checkpoints VALUES ('run-completed', 5, '\x0104000102047368697006636f6d6d697409636f6d706c65746564c691fbe9fb9ac2ed31f4b7c7eafb9ac2ed31000c0101e28bc4eafb9ac2ed3192ac03000000360403747275', 1235535);
INSERT INTO fixture0002.checkpoints VALUES ('run-completed', 6, '\x0104000103066e6f7469667904737465700772756e6e696e67e6958eebfb9ac2ed3100e6958eebfb9ac2ed310000', 1235536);
INSERT INTO fixture0002.checkpoints VALUES ('run-completed', 7, '\x0104000103066e6f74696679047374657009636f6d706c65746564e6958eebfb9ac2ed31d4e1c7ebfb9ac2ed31000c0101b8f9c6ebfb9ac2ed31886800000059000b2c226e6f74696669656422', 1235537);
INSERT INTO fixture0002.checkpoints VALUES ('run-failed', 1, '\x010400040005636865636b04737465700772756e6e696e67c6a393ecfb9ac2ed3100c6a393ecfb9ac2ed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 1235538);
INSERT INTO fixture0002.checkpoints VALUES ('run-failed', 2, '\x010400020005636865636b047374657009636f6d706c65746564c6a393ecfb9ac2ed31a0b5e4ecfb9ac2ed3100040101eacde3ecfb9ac2ed31a4670000003d7b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d6661696c6564225d7d010663686172676504737465700772756e6e696e67a0b5e4ecfb9ac2ed3100a0b5e4ecfb9ac2ed310000', 1235539);
INSERT INTO fixture0002.checkpoints VALUES ('run-failed', 3, '\x01040001010663686172676504737465700772756e6e696e67a0b5e4ecfb9ac2ed31009089a8edfb9ac2ed310001018692a7edfb9ac2ed31b6620f676174657761792074696d656f75740000', 1235540);
INSERT INTO fixture0002.checkpoints VALUES ('run-failed', 4, '\x0104000101066368617267650473746570066661696c6564a0b5e4ecfb9ac2ed31ce93eaedfb9ac2ed3100000102a493e6edfb9ac2ed31f8e9030d63617264206465636c696e65640000', 1235541);
INSERT INTO fixture0002.checkpoints VALUES ('run-cancelled', 1, '\x010400040005636865636b04737465700772756e6e696e67f6dbfeeefb9ac2ed3100f6dbfeeefb9ac2ed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 1235542);
INSERT INTO fixture0002.checkpoints VALUES ('run-cancelled', 2, '\x010400020005636865636b047374657009636f6d706c65746564f6dbfeeefb9ac2ed318ee6e0f7fb9ac2ed310004010184dad5f7fb9ac2ed318a8c0b000000407b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d63616e63656c6c6564225d7d010663686172676504737465700772756e6e696e678ee6e0f7fb9ac2ed31008ee6e0f7fb9ac2ed310000', 1235543);
INSERT INTO fixture0002.checkpoints VALUES ('run-cancelled', 3, '\x01040001010663686172676504737465700772756e6e696e678ee6e0f7fb9ac2ed3100a6e6f7fafb9ac2ed310001018c9af6fafb9ac2ed31cab4010f676174657761792074696d656f75740000', 1235544);
INSERT INTO fixture0002.checkpoints VALUES ('run-cancelled', 4, '\x01040001010663686172676504737465700770656e64696e678ee6e0f7fb9ac2ed310000000102928fd6fbfb9ac2ed31e4a6a80120696e7465727275707465643a20666c75783a2072756e2063616e63656c6c65640001', 1235545);
INSERT INTO fixture0002.checkpoints VALUES ('run-unfinished', 1, '\x010400040005636865636b04737465700772756e6e696e678293a4fefb9ac2ed31008293a4fefb9ac2ed310000010663686172676504737465700770656e64696e67000000000002047368697006636f6d6d69740770656e64696e67000000000003066e6f7469667904737465700770656e64696e670000000000', 1235546);
INSERT INTO fixture0002.checkpoints VALUES ('run-unfinished', 2, '\x010400020005636865636b047374657009636f6d706c657465648293a4fefb9ac2ed31cc8efffefb9ac2ed3100040101c2f8fcfefb9ac2ed318a9602000000417b22636865636b6564223a747275652c2273686970706564223a66616c73652c226e6f746573223a5b22636865636b6564206f2d756e66696e6973686564225d7d010663686172676504737465700772756e6e696e67cc8efffefb9ac2ed3100cc8efffefb9ac2ed310000', 1235547);
INSERT INTO fixture0002.checkpoints VALUES ('run-unfinished', 3, '\x01040001010663686172676504737465700772756e6e696e67cc8efffefb9ac2ed3100dedac8fffb9ac2ed310001018eecc7fffb9ac2ed31d4590f676174657761792074696d656f75740000', 1235548);


--
-- Data for Name: corrupt_0001; Type: TABLE DATA; Schema: fixture0002; Owner: -
--



--
-- Data for Name: runs; Type: TABLE DATA; Schema: fixture0002; Owner: -
--

INSERT INTO fixture0002.runs VALUES ('run-completed', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'completed', 7, '', 0, 1796237425215919822, 1796237425223727210, 1796237425223727210, '', '\x7b226f72646572223a226f2d636f6d706c65746564222c2263656e7473223a313235307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 4, 5, 1, 0, 'notify');
INSERT INTO fixture0002.runs VALUES ('run-failed', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'failed', 4, '', 0, 1796237425224340029, 1796237425226159706, 1796237425226159456, 'flux: workflow "fixture-order" run run-failed: step "charge" failed on attempt 2: card declined', '\x7b226f72646572223a226f2d6661696c6564222c2263656e7473223a313235307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 1, 3, 2, 0, 'charge');
INSERT INTO fixture0002.runs VALUES ('run-cancelled', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'cancelled', 4, '', 0, 1796237425227307327, 1796237425242006731, 1796237425242006591, 'flux: run cancelled', '\x7b226f72646572223a226f2d63616e63656c6c6564222c2263656e7473223a307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 1, 3, 1, 1, 'charge');
INSERT INTO fixture0002.runs VALUES ('run-unfinished', 'fixture-order', '3b032fecc7844bd406c1f1b0', 'running', 3, 'fixture#73a04efa', 1796237426244783000, 1796237425243352562, 1796237425244706479, 0, '', '\x7b226f72646572223a226f2d756e66696e6973686564222c2263656e7473223a3939307d', '\x7b22636865636b6564223a66616c73652c2273686970706564223a66616c73657d', 4, 1, 2, 1, 0, 'charge');


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: fixture0002; Owner: -
--

INSERT INTO fixture0002.schema_migrations VALUES (1, '0001_runs', '2026-12-02 18:50:25.185496+00');
INSERT INTO fixture0002.schema_migrations VALUES (2, '0002_log', '2026-12-02 18:50:25.185496+00');


--
-- Name: checkpoints checkpoints_pkey; Type: CONSTRAINT; Schema: fixture0002; Owner: -
--

ALTER TABLE ONLY fixture0002.checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (run_id, version);


--
-- Name: corrupt_0001 corrupt_0001_pkey; Type: CONSTRAINT; Schema: fixture0002; Owner: -
--

ALTER TABLE ONLY fixture0002.corrupt_0001
    ADD CONSTRAINT corrupt_0001_pkey PRIMARY KEY (id);


--
-- Name: runs runs_pkey1; Type: CONSTRAINT; Schema: fixture0002; Owner: -
--

ALTER TABLE ONLY fixture0002.runs
    ADD CONSTRAINT runs_pkey1 PRIMARY KEY (id) INCLUDE (created_at);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: fixture0002; Owner: -
--

ALTER TABLE ONLY fixture0002.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: checkpoints_xid; Type: INDEX; Schema: fixture0002; Owner: -
--

CREATE INDEX checkpoints_xid ON fixture0002.checkpoints USING brin (xid);


--
-- Name: runs_error_words; Type: INDEX; Schema: fixture0002; Owner: -
--

CREATE INDEX runs_error_words ON fixture0002.runs USING gin (to_tsvector('simple'::regconfig, error)) WHERE (error <> ''::text);


--
-- Name: runs_newest; Type: INDEX; Schema: fixture0002; Owner: -
--

CREATE INDEX runs_newest ON fixture0002.runs USING btree (created_at DESC, id DESC);


--
-- Name: runs_stopped; Type: INDEX; Schema: fixture0002; Owner: -
--

CREATE INDEX runs_stopped ON fixture0002.runs USING btree (created_at DESC, id DESC) WHERE (status = ANY (ARRAY['failed'::text, 'cancelled'::text]));


--
-- Name: runs_unfinished; Type: INDEX; Schema: fixture0002; Owner: -
--

CREATE INDEX runs_unfinished ON fixture0002.runs USING btree (workflow, created_at) WHERE (status = ANY (ARRAY['pending'::text, 'running'::text]));


--
-- Name: runs_workflow_newest; Type: INDEX; Schema: fixture0002; Owner: -
--

CREATE INDEX runs_workflow_newest ON fixture0002.runs USING btree (workflow, created_at DESC, id DESC);


--
-- PostgreSQL database dump complete
--

\unrestrict 8G9Le4rRQEuWwZCrIt4e9MCsmmjUd7Z1tFmk6yd6BqL5HZPHtKLwL1X5XtPivU3

