package postgres

import (
	"strings"
)

// headerColumns are the columns of runs, in the order scanHeader reads them.
const headerColumns = `id, workflow, fingerprint, status, version, owner, lease_until, created_at, updated_at, finished_at,
	error, input, initial_data, nodes, done, attempts, failures, interrupted, at_node,
	wake_at, wait_key, concurrency_key, signal_seq`

// columns0002 are the columns of runs in schema 0002, which the runs of
// schema 0001 are converted to (before the columns of later schemas exist).
const columns0002 = `id, workflow, fingerprint, status, version, owner, lease_until, created_at, updated_at, finished_at,
	error, input, initial_data, nodes, done, attempts, failures, interrupted, at_node`

// free is the condition of a run's lease that a claimant may take: none,
// expired, or held by an earlier start of the claimant's engine ($engine is
// replaced by the parameter of driver.OwnerEngine(claimant)).
const free = `(owner = '' OR lease_until <= {now} OR owner = $engine OR left(owner, length($engine) + 1) = $engine || '#')`

// nowNS is the database's clock in Unix nanoseconds (to the microsecond):
// every lease is computed from it, so the engines sharing a database need
// not agree on the time. $lease parameters are microseconds.
const nowNS = "((extract(epoch from now()) * 1000000)::bigint * 1000)"

// queries are the store's SQL with its schema filled in.
type queries struct {
	schema, migrations                 string // quoted
	runs, checkpoints, signals         string // quoted, schema-qualified
	create                             string // array form, for a group commit
	checkpoint, checkpointConsume      string // array forms, for a group commit
	why, header, headers               string
	logRows, insertLog                 string
	claim, claimWhy, expired, claimIDs string
	waitingDue, nextWake               string
	lockLimits, counted                string
	pendingLeased, pendingFree         string
	manyLogs                           string
	extend, release, cancel            string
	status, pruneIDs, list             string
	deleteLogs                         string // of ANY($1) runs
	deleteTrace                        string // of ANY($1) runs
	deleteSignals                      string // of ANY($1) runs
	insertTrace, traceEvents           string
	insert0001                         string // converted runs of schema 0001
	signalQueries
	scheduleQueries
}

func makeQueries(schema string) queries {
	r := strings.NewReplacer("{free}", free, "{runs}", schema+".runs", "{checkpoints}", schema+".checkpoints",
		"{signals}", schema+".signals", "{schedules}", schema+".schedules",
		"{header}", headerColumns, "{columns0002}", columns0002).Replace
	// {now} is replaced last: free contains it. $engine is the parameter
	// of the claimant's engine.
	q := func(sql string, engine string) string {
		return strings.NewReplacer("{now}", nowNS, "$engine", engine).Replace(r(sql))
	}
	rq := func(sql string) string { return q(sql, "") }
	return queries{
		schema:     schema,
		migrations: schema + ".schema_migrations",
		runs:       schema + ".runs", checkpoints: schema + ".checkpoints", signals: schema + ".signals",
		// A group commit's creates: the headers that are new, then the
		// first checkpoint row of those runs only.
		create: rq(`WITH v AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
				$8::bigint[], $9::bigint[], $10::text[], $11::bytea[], $12::bytea[], $13::int[], $14::int[], $15::int[],
				$16::int[], $17::int[], $18::text[], $19::bytea[], $20::bigint[], $21::text[], $22::text[], $23::bigint[])
				AS v(id, workflow, fingerprint, status, owner, lease, created_at, updated_at, finished_at, error, input,
					initial_data, nodes, done, attempts, failures, interrupted, at_node, body,
					wake_at, wait_key, concurrency_key, signal_seq)),
		ins AS (INSERT INTO {runs} ({header})
			SELECT v.id, v.workflow, v.fingerprint, v.status, 1, v.owner,
				CASE WHEN v.owner <> '' THEN {now} + v.lease * 1000 ELSE 0 END,
				v.created_at, v.updated_at, v.finished_at, v.error, v.input, v.initial_data, v.nodes, v.done,
				v.attempts, v.failures, v.interrupted, v.at_node, v.wake_at, v.wait_key, v.concurrency_key, v.signal_seq
			FROM v
			ON CONFLICT (id) DO NOTHING
			RETURNING id, lease_until, version),
		log AS (INSERT INTO {checkpoints} (run_id, version, body) SELECT ins.id, 1, v.body FROM ins JOIN v ON v.id = ins.id)
		SELECT id, lease_until, version FROM ins`),
		checkpoint:        rq(checkpointSQL(false)),
		checkpointConsume: rq(checkpointSQL(true)),
		why:               rq(`SELECT version, owner FROM {runs} WHERE id = $1`),
		header:            rq(`SELECT {header} FROM {runs} WHERE id = $1`),
		headers:           rq(`SELECT {header} FROM {runs} WHERE id = ANY($1)`),
		logRows:           rq(`SELECT body FROM {checkpoints} WHERE run_id = $1 ORDER BY version`),
		insertLog:         rq(`INSERT INTO {checkpoints} (run_id, version, body) VALUES ($1, $2, $3)`),
		claim: q(`UPDATE {runs} SET owner = $2, lease_until = {now} + $3::bigint * 1000, version = version + 1
			WHERE id = $1 AND (owner = $2 OR {free})
			RETURNING {header}`, "$4"),
		claimWhy: rq(`SELECT owner, lease_until FROM {runs} WHERE id = $1`),
		// Pending and running runs, by runs_unfinished; the pending runs of
		// the workflows with a limit ($5) are walked by claimLimited.
		expired: q(`SELECT {header} FROM {runs}
			WHERE status IN ('pending', 'running') AND workflow = ANY($1)
				AND NOT (status = 'pending' AND workflow = ANY($5))
				AND owner <> $3 AND {free}
			ORDER BY created_at + 0, id
			LIMIT $2
			FOR UPDATE SKIP LOCKED`, "$4"),
		// Waiting runs that are due, the earliest due first, by walking
		// runs_waiting from its start up to the limit: neither those not
		// due nor those due beyond the limit are read.
		waitingDue: q(`SELECT {header} FROM {runs}
			WHERE status = 'waiting' AND wake_at <= {now} AND workflow = ANY($1)
				AND owner <> $3 AND {free}
			ORDER BY wake_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED`, "$4"),
		// The first entry of runs_waiting after now that is free. (owner
		// = '' first: the planner, which cannot tell how many runs the
		// condition of the lease lets through, then still walks the index
		// rather than read every waiting run.)
		nextWake: q(`SELECT wake_at FROM {runs}
			WHERE status = 'waiting' AND wake_at > {now} AND wake_at < 9223372036854775807 AND workflow = ANY($1)
				AND (owner = '' OR (owner <> $2 AND {free}))
			ORDER BY wake_at
			LIMIT 1`, "$3"),
		// In the order of the keys (sorted by the caller), so that two
		// claimers never wait for each other.
		lockLimits: `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k`,
		// By runs_counted: the same condition as its predicate.
		counted: rq(`SELECT concurrency_key, count(*) FROM {runs}
			WHERE workflow = $1 AND (status = 'running' OR (status IN ('pending', 'waiting') AND owner <> ''))
			GROUP BY concurrency_key`),
		// Pending runs a claimant took and left: counted already.
		pendingLeased: q(`SELECT {header} FROM {runs}
			WHERE status = 'pending' AND workflow = $1 AND owner <> '' AND owner <> $2 AND {free}
			ORDER BY created_at + 0, id
			LIMIT $4
			FOR UPDATE SKIP LOCKED`, "$3"),
		// Free pending runs after a position, but for those of full keys.
		pendingFree: rq(`SELECT {header} FROM {runs}
			WHERE status = 'pending' AND workflow = $1 AND owner = '' AND owner <> $6
				AND (created_at + 0, id) > ($2::bigint, $3::text) AND NOT (concurrency_key = ANY($4))
			ORDER BY created_at + 0, id
			LIMIT $5
			FOR UPDATE SKIP LOCKED`),
		claimIDs: rq(`UPDATE {runs} SET owner = $2, lease_until = {now} + $3::bigint * 1000, version = version + 1
			WHERE id = ANY($1)
			RETURNING id, version, lease_until`),
		manyLogs: rq(`SELECT run_id, body FROM {checkpoints} WHERE run_id = ANY($1) ORDER BY run_id, version`),
		// Locking in ID order, as the group-commit batches do, rules out
		// deadlocks between them.
		extend: rq(`UPDATE {runs} x SET lease_until = {now} + $3::bigint * 1000
			FROM (SELECT id FROM {runs} WHERE id = ANY($1) AND owner = $2 ORDER BY id FOR UPDATE) l
			WHERE x.id = l.id
			RETURNING x.id`),
		release: rq(`UPDATE {runs} SET owner = '', lease_until = 0, version = version + 1 WHERE id = $1 AND owner = $2 AND owner <> ''`),
		cancel: rq(`UPDATE {runs} SET status = 'cancelled', error = $2, updated_at = $3, finished_at = $3, owner = '',
				lease_until = 0, version = version + 1
			WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
			RETURNING version, nodes`),
		status: rq(`SELECT status FROM {runs} WHERE id = $1`),
		// By runs_newest: a run that finished before the cut was created
		// before it. An index of its own would cost every completion an
		// index entry more.
		pruneIDs: rq(`SELECT id FROM {runs} WHERE created_at < $2 AND status = $1 AND finished_at < $2
				AND ($3 = '' OR workflow = $3) AND NOT (workflow = ANY($4))
			ORDER BY created_at LIMIT $5 FOR UPDATE SKIP LOCKED`),
		deleteLogs:    rq(`DELETE FROM {checkpoints} WHERE run_id = ANY($1)`),
		deleteTrace:   schema + `.trace_events WHERE run_id = ANY($1)`,
		deleteSignals: rq(`DELETE FROM {signals} WHERE run_id = ANY($1)`),
		insertTrace: `INSERT INTO ` + schema + `.trace_events (run_id, created_at, type, line)
			SELECT v.run_id, v.created_at, v.type, v.line
			FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS v(run_id, created_at, type, line, n)
			ORDER BY v.n`,
		traceEvents: `SELECT seq, run_id, line FROM ` + schema + `.trace_events
			WHERE seq > $1 AND ($2 = '' OR run_id = $2) ORDER BY seq LIMIT $3`,
		list: rq(`SELECT {header} FROM {runs}`),
		// Converted runs keep their version and lease as they were. They
		// go into the table of schema 0002: the columns of later schemas
		// are added after, with their defaults.
		insert0001: rq(`WITH ins AS (INSERT INTO {runs} ({columns0002})
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
				$8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::bytea[], $13::bytea[], $14::int[], $15::int[],
				$16::int[], $17::int[], $18::int[], $19::text[])
			RETURNING id),
		log AS (INSERT INTO {checkpoints} (run_id, version, body)
			SELECT v.id, v.version, v.body FROM unnest($1::text[], $5::bigint[], $20::bytea[]) AS v(id, version, body))
		SELECT count(*) FROM ins`),
		signalQueries:   makeSignalQueries(rq),
		scheduleQueries: makeScheduleQueries(rq),
	}
}

// checkpointSQL is the statement of a group commit's checkpoints:
// compare-and-set on each header, then a checkpoint row for each run whose
// header was written, keyed by the version it now has. $14 > 0 extends the
// stored owner's lease, < 0 releases it.
//
// A run written waiting takes the wake time $17 unless a signal came that
// the writer had not seen ($19, the writer's signal_seq, is below the
// row's): then it is claimable at once (0). The row's signal_seq is the one
// of the row as it is when the update locks it (READ COMMITTED re-reads a
// row changed meanwhile), and Signal locks the row too, so a signal racing
// the write is seen by one or the other.
//
// With consume, the statement also marks signals consumed ($20, $21, $22:
// run, seq, node), of the runs whose header it wrote only.
func checkpointSQL(consume bool) string {
	sql := `WITH v AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
				$8::bigint[], $9::int[], $10::int[], $11::int[], $12::int[], $13::text[], $14::bigint[], $15::int[],
				$16::bytea[], $17::bigint[], $18::text[], $19::bigint[])
				AS v(id, version, owner, status, error, fingerprint, updated_at, finished_at, nodes, done, attempts,
					failures, at_node, lease, interrupted, body, wake_at, wait_key, signal_seq)),
		up AS (UPDATE {runs} x SET status = v.status, error = v.error, fingerprint = v.fingerprint,
				updated_at = v.updated_at, finished_at = v.finished_at, nodes = v.nodes, done = v.done,
				attempts = v.attempts, failures = v.failures, interrupted = v.interrupted, at_node = v.at_node,
				version = x.version + 1,
				lease_until = CASE WHEN v.lease > 0 AND x.owner <> '' THEN {now} + v.lease * 1000
					WHEN v.lease < 0 THEN 0 ELSE x.lease_until END,
				owner = CASE WHEN v.lease < 0 THEN '' ELSE x.owner END,
				wake_at = CASE WHEN v.wake_at <> 0 AND x.signal_seq > v.signal_seq THEN 0 ELSE v.wake_at END,
				wait_key = v.wait_key
			FROM v WHERE x.id = v.id AND x.version = v.version AND (x.owner = v.owner OR x.owner = '')
			RETURNING x.id, x.lease_until, x.version),
		log AS (INSERT INTO {checkpoints} (run_id, version, body) SELECT up.id, up.version, v.body FROM up JOIN v ON v.id = up.id)`
	if consume {
		sql += `,
		consume AS (UPDATE {signals} g SET node = c.node
			FROM up, unnest($20::text[], $21::bigint[], $22::int[]) AS c(run_id, seq, node)
			WHERE up.id = c.run_id AND g.run_id = c.run_id AND g.seq = c.seq)`
	}
	return sql + `
		SELECT id, lease_until, version FROM up`
}
