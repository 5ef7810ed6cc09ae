package postgres_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
)

func TestSecretsStoreSealedBytesAndRefuseDeletingUsedOnes(t *testing.T) {
	db, ctx := open(t), ctxT(t)
	owner := uuid.New()
	s, created, err := db.PutSecret(ctx, postgres.SealedSecret{Name: "DB", KeyID: "k1", Sealed: []byte{1, 2}}, owner)
	if err != nil || !created || s.KeyID != "k1" || s.OwnerKeyID == nil || *s.OwnerKeyID != owner {
		t.Fatalf("put: %+v %v %v", s, created, err)
	}
	// A new value keeps the owner.
	if s, created, err = db.PutSecret(ctx, postgres.SealedSecret{Name: "DB", KeyID: "k2", Sealed: []byte{3}}, uuid.New()); err != nil || created || *s.OwnerKeyID != owner {
		t.Fatalf("change: %+v %v %v", s, created, err)
	}
	got, err := db.SealedSecrets(ctx, []string{"DB", "NOPE"})
	if err != nil || len(got) != 1 || got[0].KeyID != "k2" || string(got[0].Sealed) != "\x03" {
		t.Fatalf("sealed: %+v %v", got, err)
	}
	if ok, err := db.ResealSecret(ctx, "k1", postgres.SealedSecret{Name: "DB", KeyID: "k3", Sealed: []byte{4}}); err != nil || ok {
		t.Fatalf("reseal from a key it is not sealed with: %v %v", ok, err)
	}
	if ids, err := db.SecretKeyIDs(ctx); err != nil || ids["k2"] != 1 || len(ids) != 1 {
		t.Fatalf("key ids: %v %v", ids, err)
	}
	v := version("uses-db", "code/u")
	v.Secrets = []string{"DB"}
	if _, err := deploy(ctx, db, v); err != nil {
		t.Fatal(err)
	}
	wantCode(t, db.DeleteSecret(ctx, "DB"), ferry.ECONFLICT)
	v.Secrets = nil
	if _, err := deploy(ctx, db, v); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSecret(ctx, "DB"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, db.DeleteSecret(ctx, "DB"), ferry.ENOTFOUND)
	_, err = db.GetSecret(ctx, "DB")
	wantCode(t, err, ferry.ENOTFOUND)
}
