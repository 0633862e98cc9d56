// DingTalk's actionCard body (issue #25): the fields the stand-in will check, valid JSON whatever
// the text holds.
#include "request.hpp"

#include <gtest/gtest.h>
#include <jansson.h>

using namespace dingtalk;

TEST(CardRequest, ButtonsStackedOrSideBySide)
{
    const std::vector<CardButton> buttons = {{"静默 2小时", "https://h/a?l=k1.A.B"},
                                             {"静默 1天", "https://h/a?l=k1.C.D"}};
    EXPECT_EQ(card_request_body("[FIRING:1] Disk", "**告警** \"x\"\n", buttons, false),
              R"({"msgtype":"actionCard","actionCard":{"title":"[FIRING:1] Disk",)"
              R"("text":"**告警** \"x\"\n","btnOrientation":"0","btns":[)"
              R"({"title":"静默 2小时","actionURL":"https://h/a?l=k1.A.B"},)"
              R"({"title":"静默 1天","actionURL":"https://h/a?l=k1.C.D"}]}})");
    const std::string side = card_request_body("t", "x", buttons, true);
    EXPECT_NE(side.find(R"("btnOrientation":"1")"), std::string::npos);
}

TEST(CardRequest, WithoutButtonsAndAlwaysValidJson)
{
    EXPECT_EQ(card_request_body("t", "x", {}, false),
              R"({"msgtype":"actionCard","actionCard":{"title":"t","text":"x",)"
              R"("btnOrientation":"0"}})");
    const std::string body =
        card_request_body("a\"\\\x01", "b\x1f", {{"c\"", "d\\"}, {"", ""}}, false);
    json_error_t error;
    json_t *j = json_loads(body.c_str(), 0, &error);
    ASSERT_NE(j, nullptr) << error.text << "\n" << body;
    json_t *card = json_object_get(j, "actionCard");
    EXPECT_STREQ(json_string_value(json_object_get(card, "title")), "a\"\\\x01");
    EXPECT_EQ(json_array_size(json_object_get(card, "btns")), 2u);
    json_decref(j);
}
