package postgres

import "strings"

// queries are the store's SQL with its schema filled in. Every lease time is
// computed from now() on the server: $lease parameters are microseconds. A
// claim takes over at once a lease held by an earlier start of the
// claimant's engine: an owner equal to its engine ID, or that ID and "#".
type queries struct {
	schema     string // quoted
	runs       string // quoted, schema-qualified
	migrations string
	create     string
	update     string
	createOne  string
	updateOne  string
	why        string
	get        string
	list       string // SELECT ... FROM runs, before WHERE
	claim      string
	claimWhy   string
	expired    string
	claimIDs   string
	extend     string
}

func makeQueries(schema string) queries {
	r := strings.NewReplacer("{runs}", schema+".runs").Replace
	return queries{
		schema:     schema,
		runs:       schema + ".runs",
		migrations: schema + ".schema_migrations",
		// The writes of a group commit go as one statement per kind, their
		// fields as arrays: a row comes back for each write that applied.
		create: r(`INSERT INTO {runs}
			(id, workflow, status, version, owner, lease_until, created_at, created_ns, updated_at, body)
			SELECT v.id, v.workflow, v.status, 1, v.owner,
				CASE WHEN v.owner <> '' THEN now() + v.lease * interval '1 microsecond' END,
				v.created_at, v.created_ns, v.updated_at, v.body
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
				$6::timestamptz[], $7::bigint[], $8::timestamptz[], $9::bytea[])
				AS v(id, workflow, status, owner, lease, created_at, created_ns, updated_at, body)
			ON CONFLICT (id) DO NOTHING
			RETURNING id, lease_until`),
		// A lease > 0 extends the lease, 0 keeps it, < 0 releases it.
		update: r(`UPDATE {runs} r SET
				status = v.status, version = r.version + 1, owner = v.new_owner,
				lease_until = CASE
					WHEN v.lease > 0 THEN now() + v.lease * interval '1 microsecond'
					WHEN v.lease < 0 THEN NULL
					ELSE r.lease_until END,
				updated_at = v.updated_at, body = v.body
			FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[],
				$7::timestamptz[], $8::bytea[])
				AS v(id, version, owner, status, new_owner, lease, updated_at, body)
			WHERE r.id = v.id AND r.version = v.version AND (r.owner = v.owner OR r.owner = '')
			RETURNING r.id, r.lease_until`),
		// The same for a single write, the usual case of a sequential
		// caller: the array forms' generic plans expect ten rows, so with
		// one the server would plan them anew every time.
		createOne: r(`INSERT INTO {runs}
			(id, workflow, status, version, owner, lease_until, created_at, created_ns, updated_at, body)
			VALUES ($1, $2, $3, 1, $4::text,
				CASE WHEN $4::text <> '' THEN now() + $5::bigint * interval '1 microsecond' END,
				$6, $7, $8, $9)
			ON CONFLICT (id) DO NOTHING
			RETURNING id, lease_until`),
		updateOne: r(`UPDATE {runs} SET
				status = $4, version = version + 1, owner = $5,
				lease_until = CASE
					WHEN $6::bigint > 0 THEN now() + $6::bigint * interval '1 microsecond'
					WHEN $6::bigint < 0 THEN NULL
					ELSE lease_until END,
				updated_at = $7, body = $8
			WHERE id = $1 AND version = $2 AND (owner = $3 OR owner = '')
			RETURNING id, lease_until`),
		why:  r(`SELECT version, owner FROM {runs} WHERE id = $1`),
		get:  r(`SELECT id, created_ns, version, owner, lease_until, body FROM {runs} WHERE id = $1`),
		list: r(`SELECT id, created_ns, version, owner, lease_until, body FROM {runs}`),
		claim: r(`UPDATE {runs} SET
				owner = $2, lease_until = now() + $3::bigint * interval '1 microsecond', version = version + 1
			WHERE id = $1 AND (owner = '' OR owner = $2 OR lease_until IS NULL OR lease_until <= now()
				OR owner = $4 OR left(owner, length($4) + 1) = $4 || '#')
			RETURNING id, created_ns, version, owner, lease_until, body`),
		claimWhy: r(`SELECT owner, lease_until FROM {runs} WHERE id = $1`),
		expired: r(`SELECT id, body FROM {runs}
			WHERE status IN ('pending', 'running') AND workflow = ANY($1)
				AND owner <> $4
				AND (owner = '' OR lease_until IS NULL OR lease_until <= now()
					OR owner = $5 OR left(owner, length($5) + 1) = $5 || '#')
				AND id <> ALL($2)
			ORDER BY created_ns, id
			LIMIT $3
			FOR UPDATE SKIP LOCKED`),
		claimIDs: r(`UPDATE {runs} SET
				owner = $2, lease_until = now() + $3::bigint * interval '1 microsecond', version = version + 1
			WHERE id = ANY($1)
			RETURNING id, version, lease_until`),
		// Locking in ID order, as the group-commit batches do, rules out
		// deadlocks between them.
		extend: r(`UPDATE {runs} r SET lease_until = now() + $3::bigint * interval '1 microsecond'
			FROM (SELECT id FROM {runs} WHERE id = ANY($1) AND owner = $2 ORDER BY id FOR UPDATE) l
			WHERE r.id = l.id
			RETURNING r.id`),
	}
}
