package postgres

import (
	"strings"
)

// headerColumns are the columns of runs, in the order scanHeader reads them.
const headerColumns = `id, workflow, fingerprint, status, version, owner, lease_until, created_at, updated_at, finished_at,
	error, input, initial_data, nodes, done, attempts, failures, interrupted, at_node`

// nowNS is the database's clock in Unix nanoseconds (to the microsecond):
// every lease is computed from it, so the engines sharing a database need
// not agree on the time. $lease parameters are microseconds.
const nowNS = "((extract(epoch from now()) * 1000000)::bigint * 1000)"

// queries are the store's SQL with its schema filled in.
type queries struct {
	schema, migrations                 string // quoted
	runs, checkpoints                  string // quoted, schema-qualified
	create, checkpoint                 string // array forms, for a group commit
	why, header, headers               string
	logRows, insertLog                 string
	claim, claimWhy, expired, claimIDs string
	manyLogs                           string
	extend, release, cancel            string
	status, pruneIDs, list             string
	deleteLogs                         string // of ANY($1) runs
	deleteTrace                        string // of ANY($1) runs
	insertTrace, traceEvents           string
	insert0001                         string // converted runs of schema 0001
}

func makeQueries(schema string) queries {
	r := strings.NewReplacer("{runs}", schema+".runs", "{checkpoints}", schema+".checkpoints",
		"{now}", nowNS, "{header}", headerColumns).Replace
	return queries{
		schema:     schema,
		migrations: schema + ".schema_migrations",
		runs:       schema + ".runs", checkpoints: schema + ".checkpoints",
		// A group commit's creates: the headers that are new, then the
		// first checkpoint row of those runs only.
		create: r(`WITH v AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
				$8::bigint[], $9::bigint[], $10::text[], $11::bytea[], $12::bytea[], $13::int[], $14::int[], $15::int[],
				$16::int[], $17::int[], $18::text[], $19::bytea[])
				AS v(id, workflow, fingerprint, status, owner, lease, created_at, updated_at, finished_at, error, input,
					initial_data, nodes, done, attempts, failures, interrupted, at_node, body)),
		ins AS (INSERT INTO {runs} ({header})
			SELECT v.id, v.workflow, v.fingerprint, v.status, 1, v.owner,
				CASE WHEN v.owner <> '' THEN {now} + v.lease * 1000 ELSE 0 END,
				v.created_at, v.updated_at, v.finished_at, v.error, v.input, v.initial_data, v.nodes, v.done,
				v.attempts, v.failures, v.interrupted, v.at_node
			FROM v
			ON CONFLICT (id) DO NOTHING
			RETURNING id, lease_until, version),
		log AS (INSERT INTO {checkpoints} (run_id, version, body) SELECT ins.id, 1, v.body FROM ins JOIN v ON v.id = ins.id)
		SELECT id, lease_until, version FROM ins`),
		// A group commit's checkpoints: compare-and-set on each header,
		// then a checkpoint row for each run whose header was written,
		// keyed by the version it now has. $14 > 0 extends the stored
		// owner's lease, < 0 releases it.
		checkpoint: r(`WITH v AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
				$8::bigint[], $9::int[], $10::int[], $11::int[], $12::int[], $13::text[], $14::bigint[], $15::int[],
				$16::bytea[])
				AS v(id, version, owner, status, error, fingerprint, updated_at, finished_at, nodes, done, attempts,
					failures, at_node, lease, interrupted, body)),
		up AS (UPDATE {runs} x SET status = v.status, error = v.error, fingerprint = v.fingerprint,
				updated_at = v.updated_at, finished_at = v.finished_at, nodes = v.nodes, done = v.done,
				attempts = v.attempts, failures = v.failures, interrupted = v.interrupted, at_node = v.at_node,
				version = x.version + 1,
				lease_until = CASE WHEN v.lease > 0 AND x.owner <> '' THEN {now} + v.lease * 1000
					WHEN v.lease < 0 THEN 0 ELSE x.lease_until END,
				owner = CASE WHEN v.lease < 0 THEN '' ELSE x.owner END
			FROM v WHERE x.id = v.id AND x.version = v.version AND (x.owner = v.owner OR x.owner = '')
			RETURNING x.id, x.lease_until, x.version),
		log AS (INSERT INTO {checkpoints} (run_id, version, body) SELECT up.id, up.version, v.body FROM up JOIN v ON v.id = up.id)
		SELECT id, lease_until, version FROM up`),
		why:       r(`SELECT version, owner FROM {runs} WHERE id = $1`),
		header:    r(`SELECT {header} FROM {runs} WHERE id = $1`),
		headers:   r(`SELECT {header} FROM {runs} WHERE id = ANY($1)`),
		logRows:   r(`SELECT body FROM {checkpoints} WHERE run_id = $1 ORDER BY version`),
		insertLog: r(`INSERT INTO {checkpoints} (run_id, version, body) VALUES ($1, $2, $3)`),
		claim: r(`UPDATE {runs} SET owner = $2, lease_until = {now} + $3::bigint * 1000, version = version + 1
			WHERE id = $1 AND (owner = '' OR owner = $2 OR lease_until <= {now}
				OR owner = $4 OR left(owner, length($4) + 1) = $4 || '#')
			RETURNING {header}`),
		claimWhy: r(`SELECT owner, lease_until FROM {runs} WHERE id = $1`),
		expired: r(`SELECT {header} FROM {runs}
			WHERE status IN ('pending', 'running') AND workflow = ANY($1)
				AND owner <> $3
				AND (owner = '' OR lease_until <= {now} OR owner = $4 OR left(owner, length($4) + 1) = $4 || '#')
			ORDER BY created_at + 0, id
			LIMIT $2
			FOR UPDATE SKIP LOCKED`),
		claimIDs: r(`UPDATE {runs} SET owner = $2, lease_until = {now} + $3::bigint * 1000, version = version + 1
			WHERE id = ANY($1)
			RETURNING id, version, lease_until`),
		manyLogs: r(`SELECT run_id, body FROM {checkpoints} WHERE run_id = ANY($1) ORDER BY run_id, version`),
		// Locking in ID order, as the group-commit batches do, rules out
		// deadlocks between them.
		extend: r(`UPDATE {runs} x SET lease_until = {now} + $3::bigint * 1000
			FROM (SELECT id FROM {runs} WHERE id = ANY($1) AND owner = $2 ORDER BY id FOR UPDATE) l
			WHERE x.id = l.id
			RETURNING x.id`),
		release: r(`UPDATE {runs} SET owner = '', lease_until = 0, version = version + 1 WHERE id = $1 AND owner = $2 AND owner <> ''`),
		cancel: r(`UPDATE {runs} SET status = 'cancelled', error = $2, updated_at = $3, finished_at = $3, owner = '',
				lease_until = 0, version = version + 1
			WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
			RETURNING version, nodes`),
		status: r(`SELECT status FROM {runs} WHERE id = $1`),
		// By runs_newest: a run that finished before the cut was created
		// before it. An index of its own would cost every completion an
		// index entry more.
		pruneIDs: r(`SELECT id FROM {runs} WHERE created_at < $2 AND status = $1 AND finished_at < $2
				AND ($3 = '' OR workflow = $3) AND NOT (workflow = ANY($4))
			ORDER BY created_at LIMIT $5 FOR UPDATE SKIP LOCKED`),
		deleteLogs:  r(`DELETE FROM {checkpoints} WHERE run_id = ANY($1)`),
		deleteTrace: schema + `.trace_events WHERE run_id = ANY($1)`,
		insertTrace: `INSERT INTO ` + schema + `.trace_events (run_id, created_at, type, line)
			SELECT v.run_id, v.created_at, v.type, v.line
			FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS v(run_id, created_at, type, line, n)
			ORDER BY v.n`,
		traceEvents: `SELECT seq, run_id, line FROM ` + schema + `.trace_events
			WHERE seq > $1 AND ($2 = '' OR run_id = $2) ORDER BY seq LIMIT $3`,
		list: r(`SELECT {header} FROM {runs}`),
		// Converted runs keep their version and lease as they were.
		insert0001: r(`WITH ins AS (INSERT INTO {runs} ({header})
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
				$8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::bytea[], $13::bytea[], $14::int[], $15::int[],
				$16::int[], $17::int[], $18::int[], $19::text[])
			RETURNING id),
		log AS (INSERT INTO {checkpoints} (run_id, version, body)
			SELECT v.id, v.version, v.body FROM unnest($1::text[], $5::bigint[], $20::bytea[]) AS v(id, version, body))
		SELECT count(*) FROM ins`),
	}
}
