package postgres

import (
	"strconv"
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
	schema, migrations                    string // quoted
	runs, nodes, attempts, nodeData       string // quoted, schema-qualified
	create, checkpoint                    string // array forms, for a group commit
	why, header, nodeRows, attemptRows    string
	dataRows                              string
	claim, claimWhy, expired, claimIDs    string
	manyNodes, manyAttempts, manyData     string
	extend, release, cancel, clearFlight  string
	status, pruneIDs, list                string
	deleteNodes, deleteAttempts, deleteND string // of ANY($1) runs
	insert0001                            string // converted runs of schema 0001
}

func makeQueries(schema string) queries {
	r := strings.NewReplacer("{runs}", schema+".runs", "{nodes}", schema+".nodes", "{attempts}", schema+".attempts",
		"{node_data}", schema+".node_data", "{now}", nowNS, "{header}", headerColumns).Replace
	// rowWrites writes the node, attempt and data rows given as arrays
	// from parameter $base on, for the runs in the CTE named of only.
	rowWrites := func(of string, base int) string {
		p := func(k int) string { return "$" + strconv.Itoa(base+k) }
		return r(`,
		n AS (INSERT INTO {nodes} (run_id, idx, name, kind, status, started_at, finished_at, in_flight)
			SELECT * FROM unnest(` + p(0) + `::text[], ` + p(1) + `::int[], ` + p(2) + `::text[], ` + p(3) + `::text[], ` + p(4) + `::text[], ` + p(5) + `::bigint[], ` + p(6) + `::bigint[], ` + p(7) + `::bigint[])
				AS n(run_id, idx, name, kind, status, started_at, finished_at, in_flight)
			WHERE n.run_id IN (SELECT id FROM ` + of + `)
			ON CONFLICT (run_id, idx) DO UPDATE SET name = excluded.name, kind = excluded.kind, status = excluded.status,
				started_at = excluded.started_at, finished_at = excluded.finished_at, in_flight = excluded.in_flight),
		a AS (INSERT INTO {attempts} (run_id, idx, number, started_at, duration, error, stack, interrupted)
			SELECT * FROM unnest(` + p(8) + `::text[], ` + p(9) + `::int[], ` + p(10) + `::int[], ` + p(11) + `::bigint[], ` + p(12) + `::bigint[], ` + p(13) + `::text[], ` + p(14) + `::text[], ` + p(15) + `::bool[])
				AS a(run_id, idx, number, started_at, duration, error, stack, interrupted)
			WHERE a.run_id IN (SELECT id FROM ` + of + `)),
		d AS (INSERT INTO {node_data} (run_id, idx, snapshot, patch_offset, patch_delete, patch_insert)
			SELECT * FROM unnest(` + p(16) + `::text[], ` + p(17) + `::int[], ` + p(18) + `::bytea[], ` + p(19) + `::int[], ` + p(20) + `::int[], ` + p(21) + `::bytea[])
				AS d(run_id, idx, snapshot, patch_offset, patch_delete, patch_insert)
			WHERE d.run_id IN (SELECT id FROM ` + of + `)
			ON CONFLICT (run_id, idx) DO UPDATE SET snapshot = excluded.snapshot, patch_offset = excluded.patch_offset,
				patch_delete = excluded.patch_delete, patch_insert = excluded.patch_insert),
		dd AS (DELETE FROM {node_data} x USING unnest(` + p(22) + `::text[], ` + p(23) + `::int[]) AS del(run_id, idx)
			WHERE x.run_id = del.run_id AND x.idx = del.idx AND del.run_id IN (SELECT id FROM ` + of + `))`)
	}
	return queries{
		schema:     schema,
		migrations: schema + ".schema_migrations",
		runs:       schema + ".runs", nodes: schema + ".nodes", attempts: schema + ".attempts", nodeData: schema + ".node_data",
		// A group commit's creates: the headers that are new, then the
		// rows of those runs only.
		create: r(`WITH v AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
				$8::bigint[], $9::bigint[], $10::text[], $11::bytea[], $12::bytea[], $13::int[], $14::int[], $15::int[],
				$16::int[], $17::int[], $18::text[])
				AS v(id, workflow, fingerprint, status, owner, lease, created_at, updated_at, finished_at, error, input,
					initial_data, nodes, done, attempts, failures, interrupted, at_node)),
		ins AS (INSERT INTO {runs} ({header})
			SELECT v.id, v.workflow, v.fingerprint, v.status, 1, v.owner,
				CASE WHEN v.owner <> '' THEN {now} + v.lease * 1000 ELSE 0 END,
				v.created_at, v.updated_at, v.finished_at, v.error, v.input, v.initial_data, v.nodes, v.done,
				v.attempts, v.failures, v.interrupted, v.at_node
			FROM v
			ON CONFLICT (id) DO NOTHING
			RETURNING id, lease_until, version)`) + rowWrites("ins", 19) + `
		SELECT id, lease_until, version FROM ins`,
		// A group commit's checkpoints: compare-and-set on each header,
		// then the rows of the runs whose header was written. $18 > 0
		// extends the stored owner's lease, < 0 releases it. The nodes from
		// the run's node count on are dropped.
		checkpoint: r(`WITH v AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
				$8::bigint[], $9::int[], $10::int[], $11::int[], $12::int[], $13::text[], $14::bigint[], $15::int[])
				AS v(id, version, owner, status, error, fingerprint, updated_at, finished_at, nodes, done, attempts,
					failures, at_node, lease, interrupted)),
		up AS (UPDATE {runs} x SET status = v.status, error = v.error, fingerprint = v.fingerprint,
				updated_at = v.updated_at, finished_at = v.finished_at, nodes = v.nodes, done = v.done,
				attempts = v.attempts, failures = v.failures, interrupted = v.interrupted, at_node = v.at_node,
				version = x.version + 1,
				lease_until = CASE WHEN v.lease > 0 AND x.owner <> '' THEN {now} + v.lease * 1000
					WHEN v.lease < 0 THEN 0 ELSE x.lease_until END,
				owner = CASE WHEN v.lease < 0 THEN '' ELSE x.owner END
			FROM v WHERE x.id = v.id AND x.version = v.version AND (x.owner = v.owner OR x.owner = '')
			RETURNING x.id, x.lease_until, x.version, x.nodes),
		dn AS (DELETE FROM {nodes} x USING up WHERE x.run_id = up.id AND x.idx >= up.nodes),
		da AS (DELETE FROM {attempts} x USING up WHERE x.run_id = up.id AND x.idx >= up.nodes),
		dx AS (DELETE FROM {node_data} x USING up WHERE x.run_id = up.id AND x.idx >= up.nodes)`) + rowWrites("up", 16) + `
		SELECT id, lease_until, version FROM up`,
		why:         r(`SELECT version, owner FROM {runs} WHERE id = $1`),
		header:      r(`SELECT {header} FROM {runs} WHERE id = $1`),
		nodeRows:    r(`SELECT run_id, idx, name, kind, status, started_at, finished_at, in_flight FROM {nodes} WHERE run_id = $1 ORDER BY idx`),
		attemptRows: r(`SELECT run_id, idx, number, started_at, duration, error, stack, interrupted FROM {attempts} WHERE run_id = $1 ORDER BY idx, number`),
		// The data rows up to node $2 from the last snapshot among them on.
		dataRows: r(`SELECT run_id, idx, snapshot, patch_offset, patch_delete, patch_insert FROM {node_data}
			WHERE run_id = $1 AND idx <= $2 AND idx >= coalesce(
				(SELECT max(idx) FROM {node_data} WHERE run_id = $1 AND idx <= $2 AND snapshot IS NOT NULL), -1)
			ORDER BY idx`),
		claim: r(`UPDATE {runs} SET owner = $2, lease_until = {now} + $3::bigint * 1000, version = version + 1
			WHERE id = $1 AND (owner = '' OR owner = $2 OR lease_until <= {now}
				OR owner = $4 OR left(owner, length($4) + 1) = $4 || '#')
			RETURNING {header}`),
		claimWhy: r(`SELECT owner, lease_until FROM {runs} WHERE id = $1`),
		expired: r(`SELECT {header} FROM {runs}
			WHERE status IN ('pending', 'running') AND workflow = ANY($1)
				AND owner <> $3
				AND (owner = '' OR lease_until <= {now} OR owner = $4 OR left(owner, length($4) + 1) = $4 || '#')
			ORDER BY created_at, id
			LIMIT $2
			FOR UPDATE SKIP LOCKED`),
		claimIDs: r(`UPDATE {runs} SET owner = $2, lease_until = {now} + $3::bigint * 1000, version = version + 1
			WHERE id = ANY($1)
			RETURNING id, version, lease_until`),
		manyNodes: r(`SELECT run_id, idx, name, kind, status, started_at, finished_at, in_flight FROM {nodes}
			WHERE run_id = ANY($1) ORDER BY run_id, idx`),
		manyAttempts: r(`SELECT run_id, idx, number, started_at, duration, error, stack, interrupted FROM {attempts}
			WHERE run_id = ANY($1) ORDER BY run_id, idx, number`),
		manyData: r(`SELECT run_id, idx, snapshot, patch_offset, patch_delete, patch_insert FROM {node_data} d
			WHERE run_id = ANY($1) AND idx >= coalesce(
				(SELECT max(idx) FROM {node_data} s WHERE s.run_id = d.run_id AND s.snapshot IS NOT NULL), -1)
			ORDER BY run_id, idx`),
		// Locking in ID order, as the group-commit batches do, rules out
		// deadlocks between them.
		extend: r(`UPDATE {runs} x SET lease_until = {now} + $3::bigint * 1000
			FROM (SELECT id FROM {runs} WHERE id = ANY($1) AND owner = $2 ORDER BY id FOR UPDATE) l
			WHERE x.id = l.id
			RETURNING x.id`),
		release: r(`UPDATE {runs} SET owner = '', lease_until = 0, version = version + 1 WHERE id = $1 AND owner = $2 AND owner <> ''`),
		cancel: r(`UPDATE {runs} SET status = 'cancelled', error = $2, updated_at = $3, finished_at = $3, owner = '',
				lease_until = 0, version = version + 1
			WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')`),
		clearFlight: r(`UPDATE {nodes} SET in_flight = 0 WHERE run_id = $1 AND in_flight <> 0`),
		status:      r(`SELECT status FROM {runs} WHERE id = $1`),
		pruneIDs: r(`SELECT id FROM {runs} WHERE status = $1 AND finished_at < $2
				AND ($3 = '' OR workflow = $3) AND NOT (workflow = ANY($4))
			ORDER BY finished_at LIMIT $5 FOR UPDATE SKIP LOCKED`),
		deleteNodes:    r(`DELETE FROM {nodes} WHERE run_id = ANY($1)`),
		deleteAttempts: r(`DELETE FROM {attempts} WHERE run_id = ANY($1)`),
		deleteND:       r(`DELETE FROM {node_data} WHERE run_id = ANY($1)`),
		list:           r(`SELECT {header} FROM {runs}`),
		// Converted runs keep their version and lease as they were.
		insert0001: r(`WITH ins AS (INSERT INTO {runs} ({header})
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
				$8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::bytea[], $13::bytea[], $14::int[], $15::int[],
				$16::int[], $17::int[], $18::int[], $19::text[])
			RETURNING id)`) + rowWrites("ins", 20) + `
		SELECT count(*) FROM ins`,
	}
}
