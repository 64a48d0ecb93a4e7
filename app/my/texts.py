"""The self-service pages' words in Japanese, Korean and English."""

from __future__ import annotations

LANGUAGES = ("ja", "ko", "en")


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your data",
        "intro": "Enter your mobile number. We send a code by SMS to prove it is yours; "
        "then you can see what we hold about it, and stop or erase it.",
        "phone": "Mobile number",
        "country": "Country",
        "send": "Send the code",
        "code": "Code from the SMS",
        "code_sent": "Code sent to",
        "code_valid_until": "It can be used until {at}.",
        "check": "Continue",
        "nothing": "We hold no records under this number.",
        "held": "What we hold",
        "number": "Number",
        "registered": "Registered",
        "purposes": "Verified for",
        "since": "since",
        "last_verified": "last verified",
        "reference": "request reference",
        "others": "{n} other people in this disclosure",
        "others_one": "1 other person in this disclosure",
        "times": "used {n} times",
        "times_one": "used once",
        "consents": "Consent history",
        "redemptions": "Coupon redemptions",
        "deliveries": "Coupon messages meant for you, and what became of each",
        "disclosures": "Disclosures to third parties",
        "download": "Download what this page shows, as a file (JSON)",
        "none": "None",
        "more": "The newest {shown} of {total} are shown. To receive all of them, ask us by "
        "phone or letter.",
        "kept_note": "Apart from your records, we keep how often each coupon was used with "
        "this number in the past {days} days, including uses by anyone who had the number "
        "before you. It does not say who used a coupon; it is kept so that a coupon allowed "
        "once per number is not allowed again. We delete it {days} days after the last use, "
        "and never show it.",
        "withdraw_delivery": "Stop coupon messages",
        "stop_usage": "Stop using my number for coupons",
        "stop_provision": "Stop provision to third parties",
        "resume_provision": "Resume provision to third parties",
        "stopped_since": "Provision to third parties stopped since",
        "messages_now": "Coupon messages",
        "messages_on": "You receive them.",
        "messages_off": "You do not receive them. To receive them, agree to them on the "
        "coupon site.",
        "usage_now": "Your number for coupons",
        "usage_on": "Used to track your coupon use.",
        "usage_off": "Not used. It is used only once you confirm your number for coupons on "
        "the coupon site.",
        "erase": "Erase my data",
        "erase_confirm": "Erasing cannot be undone. Your number and everything linked to it "
        "are destroyed. What we keep names you only by an anonymous id, or by a code made "
        "from the number that cannot be turned back into it: records the law requires us to "
        "keep, our security records, and how often the number used each coupon (for {days} "
        "days after the last use, so that erasing does not renew a coupon's limit). The "
        "receipt shown after the erasure lists each.",
        "erase_check": "I understand that erasing cannot be undone",
        "erase_do": "Erase now",
        "receipt": "Your data has been erased",
        "erased_at": "Erased at",
        "kept": "Kept, and why",
        "unchanged": "This is already in effect, as shown below: nothing changed.",
        "done_withdraw-delivery": "Done: coupon messages to this number are stopped.",
        "done_stop-usage": "Done: your number is no longer used for coupons.",
        "done_stop-provision": "Done: your data is no longer provided to third parties.",
        "done_resume-provision": "Done: provision to third parties is allowed again.",
        "done_corrected": "Done: your records are now under the new number.",
        "logout": "Sign out",
        "signed_out": "You have signed out.",
        "correct": "Move my records to this number",
        "new_phone": "New mobile number",
        "expired": "You are not signed in (or your session has ended). Start again.",
        "csrf": "The form has expired, so nothing was done. Start again.",
        "expired_action": "Your session had ended, so this was not done. Sign in again and "
        "do it once more.",
        "languages": "Language",
        "error_title": "Error: ",
        "h_start": "See your data",
        "h_code": "Enter the code",
        "h_code_new": "Confirm your new number",
        "h_expired": "Please sign in",
        "h_csrf": "This form has expired",
        "h_refused": "This could not be done",
        "country_jp": "Japan (+81)",
        "country_kr": "South Korea (+82)",
        "actions": "Stop or resume uses of your data",
        "correction": "Change your number",
        "erase_go": "Go to erasure",
        "erase_unchecked": "To erase your data, tick the box below first.",
        "erased": "What was erased",
        # Counts with their unit, and what joins the parts of a line of the records or
        # the receipt (a label to its value, an aside, clauses, a list, a range): each
        # language's own punctuation, never ASCII inside Japanese.
        "count": "{n} records",
        "count_one": "1 record",
        "sep": ": ",
        "open": " (",
        "close": ")",
        "inner": "; ",
        "clause": "; ",
        "list": ", ",
        "range": " – ",
        "correction_taken": "Your records were not moved: the new number belongs to someone "
        "else in our records. If those records are yours too, sign out, sign in with the new "
        "number to see them or erase them, then move these records again.",
        "correction_code_gone": "Your records were not moved: the code for the new number can "
        "no longer be used. Enter the new number again for a new code.",
        "back_start": "Back to the start",
        "back_records": "Back to your records",
        "to_newest": "Go to the newest code's page",
        "contact": "Questions, or requests by phone or letter",
        "policy": "Privacy policy",
    },
    "ja": {
        "title": "あなたのデータ",
        "intro": "携帯電話番号を入力してください。SMSで確認コードを送ります。確認後、保有している"
        "データの確認、利用停止、消去ができます。",
        "phone": "携帯電話番号",
        "country": "国",
        "send": "コードを送信",
        "code": "SMSのコード",
        "code_sent": "コードを送信しました",
        "code_valid_until": "{at}まで有効です。",
        "check": "次へ",
        "nothing": "この番号の記録は保有していません。",
        "held": "保有しているデータ",
        "number": "番号",
        "registered": "登録日時",
        "purposes": "確認済みの利用目的",
        "since": "開始",
        "last_verified": "最終確認",
        "reference": "依頼の参照番号",
        "others": "同じ提供に含まれる他の方：{n}人",
        "others_one": "同じ提供に含まれる他の方：1人",
        "times": "{n}回",
        "times_one": "1回",
        "consents": "同意の履歴",
        "redemptions": "クーポンの利用",
        "deliveries": "あなた宛てのクーポンのメッセージと、その結果",
        "disclosures": "第三者への提供の記録",
        "download": "このページの内容をファイル（JSON形式）でダウンロードする",
        "none": "なし",
        "more": "全{total}件のうち、新しい{shown}件を表示しています。すべてをご希望の場合は、"
        "電話や書面で当社にご請求ください。",
        "kept_note": "過去{days}日以内にこの番号でクーポンが使われた場合"
        "（以前この番号を使っていた方によるものを含みます）、その回数だけを、"
        "誰が使ったかわからない形で別に保管しています。「1つの番号につき1回」の"
        "クーポンが再び使えるようにならないためです。最後の利用から{days}日で削除し、"
        "表示はしません。",
        "withdraw_delivery": "クーポン配信を停止する",
        "stop_usage": "クーポン利用の管理への番号の使用を停止する",
        "stop_provision": "第三者への提供を停止する",
        "resume_provision": "第三者への提供を再開する",
        "stopped_since": "第三者への提供の停止日時",
        "messages_now": "クーポン配信",
        "messages_on": "受け取っています。",
        "messages_off": "受け取っていません。受け取るには、クーポンサイトで同意してください。",
        "usage_now": "クーポン利用の管理への番号の使用",
        "usage_on": "クーポン利用の管理に使用しています。",
        "usage_off": "使用していません。クーポンサイトで番号を確認したときにのみ使用します。",
        "erase": "データを消去する",
        "erase_confirm": "消去は取り消せません。番号とそれに結びつくデータは破棄されます。"
        "残る記録は、法令で保存が必要な記録、当社のセキュリティ記録、そして各クーポンを"
        "この番号で利用した回数（消去してもクーポンの利用上限が戻らないよう、最後の利用から"
        "{days}日間）で、いずれも匿名のIDか、番号から作った元に戻せない符号でしかあなたを"
        "示しません。それぞれを「消去完了のお知らせ」に記載します。",
        "erase_check": "消去すると元に戻せないことを理解しました",
        "erase_do": "今すぐ消去",
        "receipt": "消去完了のお知らせ",
        "erased_at": "消去日時",
        "kept": "保存する記録とその理由",
        "unchanged": "すでにその状態です（下記をご覧ください）。変更はありません。",
        "done_withdraw-delivery": "完了：この番号へのクーポン配信を停止しました。",
        "done_stop-usage": "完了：この番号をクーポン利用の管理に使用することを停止しました。",
        "done_stop-provision": "完了：第三者への提供を停止しました。",
        "done_resume-provision": "完了：第三者への提供の停止を解除しました。",
        "done_corrected": "完了：記録を新しい番号に移しました。",
        "logout": "ログアウト",
        "signed_out": "ログアウトしました。",
        "correct": "この番号に記録を移す",
        "new_phone": "新しい携帯電話番号",
        "expired": "ログインしていません（またはログインの有効期限が切れました）。"
        "最初からやり直してください。",
        "csrf": "フォームの有効期限が切れたため、何も行っていません。最初からやり直してください。",
        "expired_action": "ログインの有効期限が切れていたため、この操作は行っていません。"
        "もう一度ログインしてから操作してください。",
        "languages": "言語",
        "error_title": "エラー：",
        "h_start": "あなたのデータの確認",
        "h_code": "確認コードの入力",
        "h_code_new": "新しい番号の確認",
        "h_expired": "ログインしてください",
        "h_csrf": "フォームの有効期限切れ",
        "h_refused": "手続きできませんでした",
        "country_jp": "日本（+81）",
        "country_kr": "韓国（+82）",
        "actions": "利用の停止・再開",
        "correction": "電話番号の変更",
        "erase_go": "消去の手続きへ進む",
        "erase_unchecked": "消去するには、先に下のチェックボックスにチェックを入れてください。",
        "erased": "消去したもの",
        "count": "{n}件",
        "count_one": "1件",
        "sep": "：",
        "open": "（",
        "close": "）",
        "inner": "、",
        "clause": "。",
        "list": "、",
        "range": "〜",
        "correction_taken": "新しい番号は別の方の記録にあるため、記録は移していません。"
        "その記録もあなたのものであれば、ログアウトして新しい番号でログインし、記録を確認"
        "または消去してから、もう一度この記録を移してください。",
        "correction_code_gone": "新しい番号のコードが使えなくなったため、記録は移していません。"
        "もう一度新しい番号を入力して、コードを受け取ってください。",
        "back_start": "最初の画面に戻る",
        "back_records": "記録の画面に戻る",
        "to_newest": "最新のコードの入力画面へ",
        "contact": "お問い合わせ・電話や書面でのご請求",
        "policy": "個人情報保護方針",
    },
    "ko": {
        "title": "내 데이터",
        "intro": "휴대전화 번호를 입력하세요. 본인 확인을 위해 SMS로 인증번호를 보냅니다. 확인 후 "
        "보유 중인 데이터를 열람하고, 처리 정지 또는 삭제할 수 있습니다.",
        "phone": "휴대전화 번호",
        "country": "국가",
        "send": "인증번호 보내기",
        "code": "SMS 인증번호",
        "code_sent": "인증번호를 보냈습니다",
        "code_valid_until": "{at}까지 유효합니다.",
        "check": "계속",
        "nothing": "이 번호의 기록은 보유하고 있지 않습니다.",
        "held": "보유 중인 데이터",
        "number": "번호",
        "registered": "등록 일시",
        "purposes": "확인된 이용 목적",
        "since": "시작",
        "last_verified": "최종 확인",
        "reference": "요청 참조",
        "others": "같은 제공에 포함된 다른 사람: {n}명",
        "others_one": "같은 제공에 포함된 다른 사람: 1명",
        "times": "{n}회",
        "times_one": "1회",
        "consents": "동의 이력",
        "redemptions": "쿠폰 사용",
        "deliveries": "회원님께 보내려 한 쿠폰 메시지와 그 결과",
        "disclosures": "제3자 제공 기록",
        "download": "이 페이지의 내용을 파일(JSON 형식)로 내려받기",
        "none": "없음",
        "more": "전체 {total}건 중 최근 {shown}건을 표시합니다. 모두 받으시려면 전화나 서면으로 "
        "당사에 요청하세요.",
        "kept_note": "지난 {days}일 안에 이 번호로 쿠폰이 사용된 경우(이전에 이 번호를 쓰던 분의 "
        "사용 포함), 그 횟수만 누가 사용했는지 알 수 없는 형태로 따로 보관합니다. '번호당 1회' "
        "쿠폰을 다시 사용할 수 없게 하기 위해서입니다. 마지막 사용 후 {days}일이 지나면 삭제하며, "
        "표시하지 않습니다.",
        "withdraw_delivery": "쿠폰 메시지 수신 거부",
        "stop_usage": "쿠폰 사용 관리에 번호 이용 정지",
        "stop_provision": "제3자 제공 정지",
        "resume_provision": "제3자 제공 재개",
        "stopped_since": "제3자 제공 정지 일시",
        "messages_now": "쿠폰 메시지",
        "messages_on": "수신하고 있습니다.",
        "messages_off": "수신하지 않습니다. 받으려면 쿠폰 사이트에서 동의하세요.",
        "usage_now": "쿠폰 사용 관리에 번호 이용",
        "usage_on": "쿠폰 사용 내역 관리에 이용합니다.",
        "usage_off": "이용하지 않습니다. 쿠폰 사이트에서 번호를 인증한 경우에만 이용합니다.",
        "erase": "내 데이터 삭제",
        "erase_confirm": "삭제는 되돌릴 수 없습니다. 번호와 연결된 모든 데이터가 파기됩니다. "
        "남는 기록은 법령상 보존해야 하는 기록, 당사의 보안 기록, 그리고 각 쿠폰을 이 번호로 "
        "이용한 횟수(삭제해도 쿠폰 이용 한도가 초기화되지 않도록 마지막 이용 후 {days}일간)"
        "이며, 모두 익명 ID나 번호로 만든 되돌릴 수 없는 부호로만 귀하를 가리킵니다. "
        "각각을 '삭제 완료 안내'에 기재합니다.",
        "erase_check": "삭제하면 되돌릴 수 없다는 것을 이해했습니다",
        "erase_do": "지금 삭제",
        "receipt": "삭제 완료 안내",
        "erased_at": "삭제 일시",
        "kept": "보존하는 기록과 이유",
        "unchanged": "이미 그 상태입니다(아래를 보세요). 변경된 내용은 없습니다.",
        "done_withdraw-delivery": "완료: 이 번호로의 쿠폰 메시지를 중지했습니다.",
        "done_stop-usage": "완료: 이 번호를 쿠폰 사용 관리에 이용하는 것을 중지했습니다.",
        "done_stop-provision": "완료: 제3자 제공을 중지했습니다.",
        "done_resume-provision": "완료: 제3자 제공 중지를 해제했습니다.",
        "done_corrected": "완료: 기록을 새 번호로 옮겼습니다.",
        "logout": "로그아웃",
        "signed_out": "로그아웃했습니다.",
        "correct": "이 번호로 기록 옮기기",
        "new_phone": "새 휴대전화 번호",
        "expired": "로그인되어 있지 않습니다(또는 로그인이 만료되었습니다). "
        "처음부터 다시 시작하세요.",
        "csrf": "양식이 만료되어 아무것도 처리하지 않았습니다. 처음부터 다시 시작하세요.",
        "expired_action": "로그인이 만료되어 이 작업은 처리하지 않았습니다. 다시 로그인한 후 "
        "작업하세요.",
        "languages": "언어",
        "error_title": "오류: ",
        "h_start": "내 데이터 확인",
        "h_code": "인증번호 입력",
        "h_code_new": "새 번호 확인",
        "h_expired": "로그인하세요",
        "h_csrf": "양식이 만료되었습니다",
        "h_refused": "처리하지 못했습니다",
        "country_jp": "일본 (+81)",
        "country_kr": "대한민국 (+82)",
        "actions": "처리 정지·재개",
        "correction": "전화번호 변경",
        "erase_go": "삭제 절차로 이동",
        "erase_unchecked": "삭제하려면 먼저 아래 확인란에 체크하세요.",
        "erased": "삭제한 항목",
        "count": "{n}건",
        "count_one": "1건",
        "sep": ": ",
        "open": " (",
        "close": ")",
        "inner": ", ",
        "clause": ". ",
        "list": ", ",
        "range": " ~ ",
        "correction_taken": "새 번호가 다른 분의 기록에 있어 기록을 옮기지 않았습니다. "
        "그 기록도 회원님의 것이라면 로그아웃한 뒤 새 번호로 로그인해 기록을 확인하거나 "
        "삭제한 다음, 이 기록을 다시 옮기세요.",
        "correction_code_gone": "새 번호의 인증번호를 더 이상 사용할 수 없어 기록을 옮기지 "
        "않았습니다. 새 번호를 다시 입력해 인증번호를 받으세요.",
        "back_start": "처음 화면으로",
        "back_records": "내 기록으로 돌아가기",
        "to_newest": "최신 인증번호 입력 화면으로",
        "contact": "문의 및 전화·서면 요청",
        "policy": "개인정보 처리방침",
    },
}

# The erasure receipt in words (its API answer names tables): what went, and why what is
# kept is kept, in each language. A table not named here shows as its name.
RECEIPT: dict[str, dict[str, str]] = {
    "en": {
        "done": "Your data has been erased. Note the ID below: if you ask us about your "
        "request, it is how we find its record.",
        "subscribers": "your registry entry (the number, encrypted)",
        "verifications": "codes sent by SMS to check the number",
        "outbox_messages": "SMS sent to the number",
        "idempotency_records": "records of your requests for a code",
        "rate_limit_hits": "records that keep us from sending the number too many SMS",
        "send_windows": "records that keep us from sending the number too many SMS",
        "subscriber_purposes": "purposes the number was verified for",
        "consents": "consents to coupon messages",
        "consent_events": "history of those consents",
        "coupon_redemptions": "coupon redemptions",
        "disclosure_consents": "consents to provision to third parties",
        "disclosure_stops": "stops of provision to third parties",
        "subject_sessions": "your sign-ins to this page",
        "why_ledger_entry_subjects": "records of provision to third parties, which the law "
        "requires us to keep for three years; they name you only by an anonymous id",
        "why_access_log": "who among our staff looked at your record and when: our security "
        "record, kept one year",
        "why_audit_events": "what was done and when, by whom; never your number. Counted: "
        "the records about you; the records of your verifications and coupon uses name "
        "your anonymous id too (a verification's are deleted after six months)",
        "why_erased_redemptions": "how often your number used each coupon, under a code "
        "made from the number that cannot be turned back into it: erasing does not renew a "
        "coupon's limit per number; deleted a year after the last use",
        "why_erased_consent_events": "your consents to coupon messages, which the law asks "
        "us to keep for a month after our last message (Act on Specified Electronic Mail); "
        "deleted then",
        "why_disclosure_requests": "requests to provide data to a third party that named "
        "you, kept three years with the records of provision",
        "why_subject_requests": "your requests to us and this receipt, as proof that they "
        "were answered; kept three years",
    },
    "ja": {
        "done": "データを消去しました。下のIDを控えておいてください。お問い合わせの際、"
        "ご請求の記録を探すために使います。",
        "subscribers": "登録情報（暗号化した電話番号）",
        "verifications": "この番号に送った確認コード（SMS認証）",
        "outbox_messages": "この番号に送ったSMS",
        "idempotency_records": "確認コードのお申し込みの記録",
        "rate_limit_hits": "SMSの送りすぎを防ぐための記録",
        "send_windows": "SMSの送りすぎを防ぐための記録",
        "subscriber_purposes": "この番号を認証した利用目的",
        "consents": "クーポン配信への同意",
        "consent_events": "同意の履歴",
        "coupon_redemptions": "クーポンの利用記録",
        "disclosure_consents": "第三者提供への同意",
        "disclosure_stops": "第三者提供の停止",
        "subject_sessions": "このページへのログインの記録",
        "why_ledger_entry_subjects": "第三者提供の記録。法律により3年間保存します。"
        "あなたは匿名のIDでのみ記載されます",
        "why_access_log": "当社の担当者がいつ記録を閲覧したかの記録。安全管理のため1年間保存します",
        "why_audit_events": "いつ誰が何をしたかの記録。電話番号は含みません。件数はあなたに"
        "関する記録で、認証とクーポン利用の記録にも匿名のIDが記載されます"
        "（認証の記録は6か月後に削除します）",
        "why_erased_redemptions": "この番号で各クーポンを利用した回数。番号から作った、元に"
        "戻せない符号で保存します。消去でクーポンの番号ごとの利用上限が元に戻らないよう、"
        "最後の利用から1年後に削除します",
        "why_erased_consent_events": "クーポン配信への同意の記録。特定電子メール法により"
        "最後の配信から1か月間保存し、その後削除します",
        "why_disclosure_requests": "あなたを対象とした第三者提供の依頼。"
        "提供の記録とともに3年間保存します",
        "why_subject_requests": "あなたからのご請求と、このお知らせの内容。対応した証拠として3年間"
        "保存します",
    },
    "ko": {
        "done": "데이터를 삭제했습니다. 아래 ID를 적어 두세요. 문의하실 때 요청 기록을 "
        "찾는 데 사용합니다.",
        "subscribers": "등록 정보(암호화된 전화번호)",
        "verifications": "이 번호로 보낸 인증번호(SMS 인증)",
        "outbox_messages": "이 번호로 보낸 SMS",
        "idempotency_records": "인증번호 요청 기록",
        "rate_limit_hits": "SMS 과다 발송을 막기 위한 기록",
        "send_windows": "SMS 과다 발송을 막기 위한 기록",
        "subscriber_purposes": "이 번호를 인증한 이용 목적",
        "consents": "쿠폰 메시지 수신 동의",
        "consent_events": "동의 이력",
        "coupon_redemptions": "쿠폰 사용 기록",
        "disclosure_consents": "제3자 제공 동의",
        "disclosure_stops": "제3자 제공 중지",
        "subject_sessions": "이 페이지 로그인 기록",
        "why_ledger_entry_subjects": "제3자 제공 기록. 법에 따라 3년간 보존하며, 익명 ID로만 "
        "기재됩니다",
        "why_access_log": "당사 직원이 언제 기록을 열람했는지의 기록. 보안을 위해 1년간 보존합니다",
        "why_audit_events": "언제 누가 무엇을 했는지의 기록. 전화번호는 포함하지 않습니다. "
        "건수는 귀하에 관한 기록이며, 인증과 쿠폰 사용 기록에도 익명 ID가 기재됩니다"
        "(인증 기록은 6개월 후 삭제)",
        "why_erased_redemptions": "이 번호로 각 쿠폰을 사용한 횟수. 번호로 만든, 번호로 되돌릴 "
        "수 없는 부호로 보존합니다. 삭제로 번호당 쿠폰 사용 한도가 초기화되지 않도록 하며, "
        "마지막 사용 1년 후 삭제합니다",
        "why_erased_consent_events": "쿠폰 메시지 수신 동의 기록. 일본 특정전자메일법에 따라 "
        "마지막 발송 후 1개월간 보존한 뒤 삭제합니다",
        "why_disclosure_requests": "귀하를 대상으로 한 제3자 제공 요청. 제공 기록과 함께 3년간 "
        "보존합니다",
        "why_subject_requests": "귀하의 요청과 이 안내의 내용. 처리했다는 증거로 3년간 보존합니다",
    },
}


def erased_words(lang: str, table: str) -> str | None:
    """What the rows of ``table`` an erasure deleted are, in words (None: not named)."""
    return RECEIPT[lang].get(table)


def kept_why(lang: str, what: str, why: str) -> str:
    """Why the rows of ``what`` an erasure kept are kept, in words (else the API's ``why``)."""
    return RECEIPT[lang].get("why_" + what, why)


# What a refusal says on the pages, by its problem type (``slug``) or, for a field that
# does not validate, by the field: the API's words are a developer's, in English. A
# refusal not named here says "other". ``{attempts_left}``, ``{minutes}`` and ``{hours}``
# are filled in; one minute is said by the type's ``_one`` text (as the pages' counts
# are), a wait of two hours or more by its ``_hours`` text, in hours rounded up.
PROBLEMS: dict[str, dict[str, str]] = {
    "en": {
        "field_phone": "Check the number: a mobile number of the country you chose.",
        "field_phone_in_JP": "This looks like a Japanese number: choose Japan (+81) as the "
        "country.",
        "field_phone_in_KR": "This looks like a South Korean number: choose South Korea (+82) "
        "as the country.",
        "field_country": "Choose the country of the number.",
        "field_code": "Enter the code from the SMS: digits only.",
        "code_length": "The code has {digits} digits: enter all of them. This try was not counted.",
        "invalid-code": "The code is not correct. Tries left: {attempts_left}.",
        "verification-expired": "The code has expired. Go back and send a new one.",
        "verification-superseded": "This page is out of date: a newer code was sent to the "
        "number since, and only that one works. Enter it on the page that asked for it (the "
        "newest), or start again.",
        "attempts-exhausted": "Too many wrong codes. Go back and send a new one.",
        "verification-already-approved": "This code was already used. Go back and start again.",
        "verification-not-found": "This code request is not known. Go back and start again.",
        "rate-limited": "Too many codes were sent. Try again in {minutes} minutes.",
        "rate-limited_one": "Too many codes were sent. Try again in 1 minute.",
        "rate-limited_hours": "Too many codes were sent. Try again in {hours} hours.",
        "prefix-blocked": "We cannot send codes to this number range now. Try again later.",
        "subject-number-taken": "That number belongs to someone else in our records.",
        "subject-number-unchanged": "Your records are already under this number. Enter the "
        "new number.",
        "database-unavailable": "The service is busy. Try again in a moment.",
        "start_again_expired": "The code has expired. Enter your number to get a new one.",
        "start_again_exhausted": "Too many wrong codes. Enter your number to get a new one.",
        "start_again_used": "This code was already used. Enter your number to get a new one.",
        "other": "Something went wrong. Go back and start again.",
        "payload-too-large": "What you sent is too long. Go back, shorten it and send it again.",
    },
    "ja": {
        "field_phone": "電話番号を確認してください（選んだ国の携帯電話番号）。",
        "field_phone_in_JP": "日本の番号のようです。国は「日本（+81）」を選んでください。",
        "field_phone_in_KR": "韓国の番号のようです。国は「韓国（+82）」を選んでください。",
        "field_country": "電話番号の国を選んでください。",
        "field_code": "SMSに記載のコードを数字で入力してください。",
        "code_length": "コードは{digits}桁です。すべて入力してください"
        "（今回の入力は回数に数えていません）。",
        "invalid-code": "コードが正しくありません。あと{attempts_left}回入力できます。",
        "verification-expired": "コードの有効期限が切れました。"
        "戻って新しいコードを送ってください。",
        "verification-superseded": "この画面は古くなっています。その後この番号に新しいコードを"
        "送信したため、使えるのはそのコードだけです。そのコードを求めた最新の画面で入力するか、"
        "最初からやり直してください。",
        "attempts-exhausted": "コードの誤りが多すぎます。戻って新しいコードを送ってください。",
        "verification-already-approved": "このコードは使用済みです。"
        "戻って最初からやり直してください。",
        "verification-not-found": "このコードの要求が見つかりません。"
        "戻って最初からやり直してください。",
        "rate-limited": "コードの送信が多すぎます。{minutes}分後にもう一度お試しください。",
        "rate-limited_one": "コードの送信が多すぎます。1分後にもう一度お試しください。",
        "rate-limited_hours": "コードの送信が多すぎます。{hours}時間後にもう一度お試しください。",
        "prefix-blocked": "現在この番号帯にはコードを送信できません。時間をおいてお試しください。",
        "subject-number-taken": "その番号は別の方の記録にあります。",
        "subject-number-unchanged": "記録はすでにこの番号で登録されています。"
        "新しい番号を入力してください。",
        "database-unavailable": "ただいま混み合っています。少し待ってからお試しください。",
        "start_again_expired": "コードの有効期限が切れました。"
        "番号を入力して、新しいコードを受け取ってください。",
        "start_again_exhausted": "コードの誤りが多すぎます。"
        "番号を入力して、新しいコードを受け取ってください。",
        "start_again_used": "このコードは使用済みです。"
        "番号を入力して、新しいコードを受け取ってください。",
        "other": "問題が発生しました。戻って最初からやり直してください。",
        "payload-too-large": "送信内容が長すぎます。戻って短くしてから送信してください。",
    },
    "ko": {
        "field_phone": "번호를 확인하세요(선택한 국가의 휴대전화 번호).",
        "field_phone_in_JP": "일본 번호로 보입니다. 국가에서 일본 (+81)을 선택하세요.",
        "field_phone_in_KR": "한국 번호로 보입니다. 국가에서 대한민국 (+82)을 선택하세요.",
        "field_country": "번호의 국가를 선택하세요.",
        "field_code": "SMS로 받은 인증번호를 숫자로 입력하세요.",
        "code_length": "인증번호는 {digits}자리입니다. 모두 입력하세요. "
        "이번 입력은 횟수에 포함되지 않았습니다.",
        "invalid-code": "인증번호가 올바르지 않습니다. 남은 횟수: {attempts_left}회.",
        "verification-expired": "인증번호가 만료되었습니다. 돌아가서 새 인증번호를 받으세요.",
        "verification-superseded": "이 화면은 오래되었습니다. 그 뒤 이 번호로 새 인증번호를 "
        "보냈으므로 그 인증번호만 쓸 수 있습니다. 그 인증번호를 요청한 최신 화면에서 입력하거나 "
        "처음부터 다시 시작하세요.",
        "attempts-exhausted": "잘못된 입력이 너무 많습니다. 돌아가서 새 인증번호를 받으세요.",
        "verification-already-approved": "이미 사용된 인증번호입니다. 처음부터 다시 시작하세요.",
        "verification-not-found": "이 인증 요청을 찾을 수 없습니다. 처음부터 다시 시작하세요.",
        "rate-limited": "인증번호 발송이 너무 많습니다. {minutes}분 후에 다시 시도하세요.",
        "rate-limited_one": "인증번호 발송이 너무 많습니다. 1분 후에 다시 시도하세요.",
        "rate-limited_hours": "인증번호 발송이 너무 많습니다. {hours}시간 후에 다시 시도하세요.",
        "prefix-blocked": "지금은 이 번호대로 인증번호를 보낼 수 없습니다. 나중에 다시 시도하세요.",
        "subject-number-taken": "그 번호는 다른 분의 기록에 있습니다.",
        "subject-number-unchanged": "기록이 이미 이 번호로 등록되어 있습니다. 새 번호를 "
        "입력하세요.",
        "database-unavailable": "서비스가 혼잡합니다. 잠시 후 다시 시도하세요.",
        "start_again_expired": "인증번호가 만료되었습니다. 번호를 입력하여 새 인증번호를 받으세요.",
        "start_again_exhausted": "잘못된 입력이 너무 많습니다. 번호를 입력하여 새 인증번호를 "
        "받으세요.",
        "start_again_used": "이미 사용된 인증번호입니다. 번호를 입력하여 새 인증번호를 받으세요.",
        "other": "문제가 발생했습니다. 처음부터 다시 시작하세요.",
        "payload-too-large": "보낸 내용이 너무 깁니다. 돌아가서 줄인 뒤 다시 보내세요.",
    },
}

# The records page in words: the names the service keeps (purposes, consent actions,
# legal bases, data items, message states, the consent sources the service records and
# those the API suggests to frontends) as a person reads them. A name not listed here
# (another source a frontend gave) is shown as it is.
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "coupon_usage": "tracking coupon use",
        "coupon_delivery": "coupon messages",
        "data_subject": "seeing your own data",
        "opt_in": "agreed",
        "opt_out": "withdrawn",
        "consent": "with your consent",
        "law": "required by law",
        "investigation_compelled": "a compulsory investigation",
        "emergency_life_body_property": "an emergency (life, body or property)",
        "phone_number": "phone number",
        "subscriber_id": "your anonymous id",
        "verified_purposes": "purposes verified for",
        "registered_at": "when registered",
        "last_verified_at": "when last verified",
        "queued": "waiting",
        "sending": "being sent",
        "sent": "sent",
        "delivered": "delivered",
        "undelivered": "not delivered",
        "failed": "failed",
        "expired": "not sent in time",
        "unknown": "outcome unknown",
        "cancelled": "cancelled",
        "self_service": "this page",
        "sms": "your STOP reply by SMS",
        "carrier": "your STOP, as our SMS provider reported it",
        "staff": "our staff, at your request",
        "web": "the website",
        "app": "the app",
        "store": "in a store",
    },
    "ja": {
        "coupon_usage": "クーポン利用の管理",
        "coupon_delivery": "クーポン配信",
        "data_subject": "ご本人によるデータの確認",
        "opt_in": "同意",
        "opt_out": "同意の撤回",
        "consent": "ご本人の同意",
        "law": "法令に基づく提供",
        "investigation_compelled": "強制力のある捜査",
        "emergency_life_body_property": "生命・身体・財産の保護のための緊急時",
        "phone_number": "電話番号",
        "subscriber_id": "匿名ID",
        "verified_purposes": "認証した利用目的",
        "registered_at": "登録日時",
        "last_verified_at": "最終認証日時",
        "queued": "送信待ち",
        "sending": "送信中",
        "sent": "送信済み",
        "delivered": "配信済み",
        "undelivered": "未配信",
        "failed": "失敗",
        "expired": "期限切れ（未送信）",
        "unknown": "結果不明",
        "cancelled": "取り消し",
        "self_service": "このページ",
        "sms": "SMSでの配信停止のご返信",
        "carrier": "SMS配信事業者から届いた配信停止の通知",
        "staff": "ご請求を受けた当社の担当者",
        "web": "ウェブサイト",
        "app": "アプリ",
        "store": "店頭",
    },
    "ko": {
        "coupon_usage": "쿠폰 사용 관리",
        "coupon_delivery": "쿠폰 메시지",
        "data_subject": "본인 데이터 확인",
        "opt_in": "동의",
        "opt_out": "동의 철회",
        "consent": "본인 동의",
        "law": "법령에 따른 제공",
        "investigation_compelled": "강제 수사",
        "emergency_life_body_property": "생명·신체·재산 보호를 위한 긴급 상황",
        "phone_number": "전화번호",
        "subscriber_id": "익명 ID",
        "verified_purposes": "인증한 이용 목적",
        "registered_at": "등록 일시",
        "last_verified_at": "마지막 인증 일시",
        "queued": "발송 대기",
        "sending": "발송 중",
        "sent": "발송됨",
        "delivered": "전달됨",
        "undelivered": "전달 안 됨",
        "failed": "실패",
        "expired": "기한 초과(미발송)",
        "unknown": "결과 불명",
        "cancelled": "취소됨",
        "self_service": "이 페이지",
        "sms": "SMS 수신 거부 회신",
        "carrier": "SMS 발송 대행사가 알려 온 수신 거부",
        "staff": "요청을 받은 당사 담당자",
        "web": "웹사이트",
        "app": "앱",
        "store": "매장",
    },
}
