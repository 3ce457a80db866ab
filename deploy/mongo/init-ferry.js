// Creates the hub's MongoDB role and user (run once with mongosh as an
// administrator, e.g. from /docker-entrypoint-initdb.d or by hand):
//
//   FERRY_MONGO_PASSWORD=… mongosh "$ADMIN_URI" deploy/mongo/init-ferry.js
//
// The role (hub-role.json) lets the hub read and write its state
// collections but only find and insert on audit: the database refuses an
// update or delete of an audit entry even from the hub (row E4 of
// shared/reference/reliability.md). Then point the hub at
// mongodb://ferry-hub:…@host/ferry?replicaSet=rs0&authSource=ferry.
const fs = require('fs');
const path = require('path');

const spec = JSON.parse(fs.readFileSync(path.join(__dirname, 'hub-role.json'), 'utf8'));
const password = process.env.FERRY_MONGO_PASSWORD;
if (!password) {
  throw new Error('set FERRY_MONGO_PASSWORD to the ferry-hub user\'s password');
}
const ferry = db.getSiblingDB(spec.db);
if (ferry.getRole(spec.role) === null) {
  ferry.createRole({ role: spec.role, privileges: spec.privileges, roles: spec.roles });
} else {
  ferry.updateRole(spec.role, { privileges: spec.privileges, roles: spec.roles });
}
if (ferry.getUser('ferry-hub') === null) {
  ferry.createUser({ user: 'ferry-hub', pwd: password, roles: [{ role: spec.role, db: spec.db }] });
} else {
  ferry.updateUser('ferry-hub', { pwd: password, roles: [{ role: spec.role, db: spec.db }] });
}
print('role ' + spec.role + ' and user ferry-hub ready on ' + spec.db);
