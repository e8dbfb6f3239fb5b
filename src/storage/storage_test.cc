#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "storage/storage.h"

namespace lifeboat::storage {
namespace {

namespace fs = std::filesystem;

class FilesystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("lifeboat-storage-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    b_ = NewFilesystem(root_.string());
    ASSERT_TRUE(b_->Prepare().ok());
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::unique_ptr<Backend> b_;
};

TEST_F(FilesystemTest, PutGetListDelete) {
  ASSERT_TRUE(b_->Put("config", "hello").ok());
  ASSERT_TRUE(b_->Put("data/ab/abcdef", "0123456789").ok());
  ASSERT_TRUE(b_->Put("data/cd/cdef", "x").ok());
  EXPECT_EQ(*b_->Get("config"), "hello");
  EXPECT_EQ(*b_->Get("data/ab/abcdef", 2, 3), "234");
  EXPECT_EQ(*b_->Get("data/ab/abcdef", 7), "789");
  EXPECT_EQ(b_->Get("data/ab/abcdef", 8, 5).error().code(), Code::kDataLoss);
  EXPECT_EQ(b_->Get("missing").error().code(), Code::kNotFound);

  auto list = b_->List("data");
  ASSERT_TRUE(list.ok());
  std::sort(list->begin(), list->end(), [](auto& a, auto& b) { return a.name < b.name; });
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "data/ab/abcdef");
  EXPECT_EQ((*list)[0].size, 10u);
  EXPECT_TRUE(b_->List("nothing")->empty());

  ASSERT_TRUE(b_->Delete("data/ab/abcdef").ok());
  ASSERT_TRUE(b_->Delete("data/ab/abcdef").ok());  // already gone is fine
  EXPECT_EQ(b_->List("data")->size(), 1u);
}

TEST_F(FilesystemTest, PutReplacesWholeAndLeavesNoTemporaryFiles) {
  ASSERT_TRUE(b_->Put("locks/a", std::string(100000, 'a')).ok());
  ASSERT_TRUE(b_->Put("locks/a", "b").ok());
  EXPECT_EQ(*b_->Get("locks/a"), "b");
  size_t files = 0;
  for (auto& e : fs::recursive_directory_iterator(root_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST_F(FilesystemTest, ReadOnlyRefusesWritesAndServesReads) {
  ASSERT_TRUE(b_->Put("config", "c").ok());
  auto ro = NewReadOnly(NewFilesystem(root_.string()), "dr");
  EXPECT_TRUE(ro->read_only());
  Status put = ro->Put("x", "y");
  EXPECT_EQ(put.error().code(), Code::kPermissionDenied);
  EXPECT_NE(put.error().message().find("location 'dr' is ReadOnly"), std::string::npos) << put.error().message();
  EXPECT_EQ(ro->Delete("config").error().code(), Code::kPermissionDenied);
  EXPECT_EQ(ro->Prepare().error().code(), Code::kPermissionDenied);
  EXPECT_EQ(*ro->Get("config"), "c");
  EXPECT_EQ(ro->List("")->size(), 1u);
  EXPECT_FALSE(fs::exists(root_ / "x"));
}

TEST(S3Test, UnreachableEndpointIsUnavailableAfterRetries) {
  S3Options o;
  o.endpoint = "http://127.0.0.1:1";
  o.bucket = "b";
  o.access_key = "a";
  o.secret_key = "s";
  o.max_attempts = 2;
  auto b = NewS3(o);
  auto r = b->Get("config");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kUnavailable);
  EXPECT_NE(r.error().message().find("after 2 attempts"), std::string::npos) << r.error().message();
}

// AWS's published example of a SigV4 signing key (General Reference,
// "Examples of how to derive a signing key for Signature Version 4").
TEST(SigV4Test, SigningKeyMatchesAwsExample) {
  EXPECT_EQ(sigv4::SigningKeyHex("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam"),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

// AWS's published example "GET Object" (S3 API reference, Signature
// Calculations for the Authorization Header: single chunk).
TEST(SigV4Test, AuthorizationMatchesAwsGetObjectExample) {
  sigv4::Request r;
  r.method = "GET";
  r.path = "/test.txt";
  r.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  r.headers = {{"host", "examplebucket.s3.amazonaws.com"},
               {"range", "bytes=0-9"},
               {"x-amz-content-sha256", r.payload_hash},
               {"x-amz-date", "20130524T000000Z"}};
  r.access_key = "AKIAIOSFODNN7EXAMPLE";
  r.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  r.region = "us-east-1";
  r.stamp = "20130524T000000Z";
  EXPECT_EQ(sigv4::Authorization(r),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4Test, UriEncoding) {
  EXPECT_EQ(sigv4::UriEncode("a b/c~d_e.f-g", true), "a%20b/c~d_e.f-g");
  EXPECT_EQ(sigv4::UriEncode("a b/c", false), "a%20b%2Fc");
  EXPECT_EQ(sigv4::UriEncode("\xff=", false), "%FF%3D");
}

}  // namespace
}  // namespace lifeboat::storage
