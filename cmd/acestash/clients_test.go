package main

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// The three public MirrorAce clients, each emulated from how it writes its
// requests (the range dialects are in README, "How chunked uploads are
// understood"). Each uploads data and returns the result of its last request.

// client is a MirrorAce API client emulation.
type client struct {
	name   string
	upload func(t *testing.T, base string, data []byte, name string) uploadResult
}

var clients = []client{
	{"php", phpUpload},
	{"dotnet", dotnetUpload},
	{"python", pythonUpload},
}

// getUploadInfo calls file/upload, url-encoded or multipart.
func getUploadInfo(t testing.TB, base string, multipartForm bool) uploadInfo {
	t.Helper()
	creds := []field{{"api_key", testKey}, {"api_token", testToken}}
	var a answer
	if multipartForm {
		a = postMultipart(t, base+"/api/v1/file/upload", creds, "", "", nil, nil)
	} else {
		a = postForm(t, base+"/api/v1/file/upload", creds)
	}
	var info uploadInfo
	a.result(t, &info)
	return info
}

func chunkSize(t *testing.T, info uploadInfo) int {
	c, err := strconv.Atoi(info.MaxChunkSize)
	if err != nil || c <= 0 {
		t.Fatalf("max_chunk_size %q is not a positive number", info.MaxChunkSize)
	}
	return c
}

// uploadFields are the fields the PHP and .NET clients send with every
// chunk: credentials, keys, and mirrors[] set to the default mirrors.
func uploadFields(info uploadInfo) []field {
	fields := []field{
		{"api_key", testKey}, {"api_token", testToken},
		{"cTracker", info.CTracker}, {"upload_key", info.UploadKey},
	}
	for _, m := range info.DefaultMirrors {
		fields = append(fields, field{"mirrors[]", m})
	}
	return fields
}

// phpUpload is MirrorAce's official PHP example: multipart everywhere, a
// files[] field, repeated mirrors[] fields, inclusive ranges of C+1 bytes a
// chunk, ceil(T/C) requests (so sometimes one more, empty, at the end), and
// any status but 200 is a failure whose body is not read.
func phpUpload(t *testing.T, base string, data []byte, name string) uploadResult {
	t.Helper()
	info := getUploadInfo(t, base, true)
	c := chunkSize(t, info)
	total := len(data)
	fields := uploadFields(info)
	var last uploadResult
	n := (total + c - 1) / c
	for i := range n {
		start := i * (c + 1)
		end := min(start+c, total-1)
		chunk := data[min(start, total):min(end+1, total)]
		hdr := http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", start, end, total)}}
		a := postMultipart(t, info.ServerFile, fields, "files[]", name, chunk, hdr)
		if a.code != 200 {
			t.Fatalf("php: chunk %d: HTTP %d", i, a.code)
		}
		last = uploadResult{}
		a.result(t, &last)
	}
	return last
}

// dotnetUpload is MirrorAceNet: url-encoded file/upload, exclusive range
// ends (the last ends at the total), a files[] field, repeated mirrors[].
func dotnetUpload(t *testing.T, base string, data []byte, name string) uploadResult {
	t.Helper()
	info := getUploadInfo(t, base, false)
	c := chunkSize(t, info)
	total := len(data)
	fields := uploadFields(info)
	var last uploadResult
	for start := 0; ; start += c {
		end := min(start+c, total)
		hdr := http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", start, end, total)}}
		a := postMultipart(t, info.ServerFile, fields, "files[]", name, data[start:end], hdr)
		if a.code < 200 || a.code > 299 {
			t.Fatalf("dotnet: chunk at %d: HTTP %d", start, a.code)
		}
		last = uploadResult{}
		a.result(t, &last)
		if end >= total {
			return last
		}
	}
}

// pythonUpload is mirror_up: it posts back every key of file/upload's
// result beside the real fields, mirrors[] set to default_mirrors, a field
// named files, "bytes0-C/T" with no space, PHP's range arithmetic but only
// C bytes a request (so starts drift ahead), and a file smaller than C in a
// single request without Content-Range.
func pythonUpload(t *testing.T, base string, data []byte, name string) uploadResult {
	t.Helper()
	info := getUploadInfo(t, base, false)
	c := chunkSize(t, info)
	total := len(data)
	fields := []field{
		{"server", info.Server}, {"server_file", info.ServerFile}, {"server_remote", info.ServerRemote},
		{"max_chunk_size", info.MaxChunkSize}, {"max_file_size", info.MaxFileSize},
		{"max_mirrors", info.MaxMirrors}, {"upload_key_expiry", info.UploadKeyExpiry},
		{"api_key", testKey}, {"api_token", testToken},
		{"cTracker", info.CTracker}, {"upload_key", info.UploadKey},
	}
	// The mirrors map goes back as its keys, every mirror of the server,
	// allowed or not: mirrors[] must win over it.
	for id := range info.Mirrors {
		fields = append(fields, field{"mirrors", id})
	}
	for _, m := range info.DefaultMirrors {
		fields = append(fields, field{"default_mirrors", m}, field{"mirrors[]", m})
	}
	var last uploadResult
	if total < c {
		a := postMultipart(t, info.ServerFile, fields, "files", name, data, nil)
		a.result(t, &last)
		return last
	}
	n := (total + c - 1) / c
	for i := range n {
		start := i * (c + 1)
		end := min(start+c, total-1)
		chunk := data[i*c : min((i+1)*c, total)]
		hdr := http.Header{"Content-Range": {fmt.Sprintf("bytes%d-%d/%d", start, end, total)}}
		a := postMultipart(t, info.ServerFile, fields, "files", name, chunk, hdr)
		last = uploadResult{}
		a.result(t, &last)
	}
	return last
}
